"""The sign-in flow in process, against the in-memory issuer: callback checks, refresh, logout."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from aperture.config import OidcSettings
from aperture.identity.flow import FLOW_COOKIE_PREFIX, SignInRefused, safe_next, stale_flow_cookies
from aperture.identity.relying_party import RelyingParty
from aperture.identity.signins import Identity, seal_identity
from aperture.web.oidc_watch import SignInWatch
from tests.identity.local_issuer import CLIENT_ID, CLIENT_SECRET, ISSUER, LocalIssuer

REDIRECT = "https://apps.example.com/oidc/callback"
SECRET = b"deployment-secret-for-the-flow-tests"


def settings(**overrides) -> OidcSettings:
    return dataclasses.replace(
        OidcSettings(issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET), **overrides
    )


class Clock:
    """Wall-clock time, moved forward by the test."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def party(issuer: LocalIssuer, clock: Clock | None = None, **overrides) -> RelyingParty:
    return RelyingParty(settings(**overrides), SECRET, issuer, clock=clock or Clock())


async def signed_in(rp: RelyingParty, issuer: LocalIssuer, next_path: str = "/app?x=1", **claims):
    start = await rp.begin(next_path, REDIRECT)
    code, state = issuer.authorize(start.authorization_url, **claims)
    cookies = {start.cookie_name: start.cookie_value}
    return await rp.finish({"code": code, "state": state}, cookies, REDIRECT), start, cookies


# -- the return path -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example.com/x",
        "/\\evil.example.com",
        "/ok\\..\\x",
        "https://evil.example.com/",
        "javascript:alert(1)",
        "evil.example.com",
        "/app\r\nSet-Cookie: x=1",
        "/app\x00",
        "/app\x7f",
        "/" + "a" * 3000,
    ],
)
def test_a_return_path_off_this_server_becomes_the_root(value):
    assert safe_next(value, "/pfx") == ("/pfx/", False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "/"),
        ("/app", "/app"),
        ("/app?x=1&y=%2F%2F", "/app?x=1&y=%2F%2F"),
        ("/app/ü", "/app/%C3%BC"),
        ("/app?q=a b", "/app?q=a%20b"),
    ],
)
def test_a_path_on_this_server_is_kept(value, expected):
    assert safe_next(value, "") == (expected, True)


def test_too_many_flows_in_flight_are_all_dropped():
    few = {FLOW_COOKIE_PREFIX + str(n): "v" for n in range(2)}
    assert stale_flow_cookies({**few, "other": "x"}) == []
    many = {FLOW_COOKIE_PREFIX + str(n): "v" for n in range(5)}
    assert sorted(stale_flow_cookies(many)) == sorted(many)


# -- the flow ------------------------------------------------------------------------------


async def test_the_authorization_request_carries_pkce_state_and_nonce():
    issuer = LocalIssuer()
    start = await party(issuer).begin("/app", REDIRECT)
    query = parse_qs(urlsplit(start.authorization_url).query)
    assert start.authorization_url.startswith(ISSUER + "/auth?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [REDIRECT] and query["scope"] == ["openid profile email"]
    assert len(query["state"][0]) >= 32 and len(query["nonce"][0]) >= 32
    assert start.cookie_name.startswith(FLOW_COOKIE_PREFIX) and start.max_age == 600
    assert query["state"][0] not in start.cookie_value and query["nonce"][0] not in start.cookie_value


async def test_a_completed_sign_in_names_the_user_and_the_passed_claims():
    issuer = LocalIssuer()
    rp = party(issuer, pass_claims=("email", "groups"))
    finished, start, _ = await signed_in(rp, issuer)
    assert finished.next_path == "/app?x=1" and finished.flow_cookie == start.cookie_name
    identity = finished.identity
    assert identity.user == "alice"
    assert identity.claims == {
        "preferred_username": "alice",
        "email": "alice@example.com",
        "groups": ["staff"],
    }
    assert identity.refresh_token and identity.id_token
    current = await rp.current(finished.cookie_value)
    assert current.identity is not None and current.identity.user == "alice" and current.cookie_value is None


async def test_a_replayed_callback_is_refused():
    issuer = LocalIssuer()
    rp = party(issuer)
    start = await rp.begin("/app", REDIRECT)
    code, state = issuer.authorize(start.authorization_url)
    await rp.finish({"code": code, "state": state}, {start.cookie_name: start.cookie_value}, REDIRECT)
    # the browser no longer has the flow cookie (cleared on use)
    with pytest.raises(SignInRefused, match="already used"):
        await rp.finish({"code": code, "state": state}, {}, REDIRECT)
    # someone who kept a copy of the flow cookie: the provider will not take the code twice
    with pytest.raises(SignInRefused, match="invalid_grant"):
        await rp.finish({"code": code, "state": state}, {start.cookie_name: start.cookie_value}, REDIRECT)


async def test_a_state_of_another_sign_in_is_refused():
    issuer = LocalIssuer()
    rp = party(issuer)
    mine = await rp.begin("/app", REDIRECT)
    theirs = await rp.begin("/app", REDIRECT)
    code, _ = issuer.authorize(mine.authorization_url)
    _, their_state = issuer.authorize(theirs.authorization_url)
    with pytest.raises(SignInRefused, match="not started in this browser"):
        await rp.finish({"code": code, "state": their_state}, {mine.cookie_name: mine.cookie_value}, REDIRECT)
    # their cookie value put under my cookie's name
    _, my_state = issuer.authorize(mine.authorization_url)
    with pytest.raises(SignInRefused, match="state"):
        await rp.finish({"code": code, "state": my_state}, {mine.cookie_name: theirs.cookie_value}, REDIRECT)


async def test_a_nonce_of_another_sign_in_is_refused():
    issuer = LocalIssuer()
    rp = party(issuer)
    start = await rp.begin("/app", REDIRECT)
    code, state = issuer.authorize(start.authorization_url, nonce="replayed-from-elsewhere")
    with pytest.raises(SignInRefused, match="nonce"):
        await rp.finish({"code": code, "state": state}, {start.cookie_name: start.cookie_value}, REDIRECT)


@pytest.mark.parametrize(
    ("arguments", "status", "match"),
    [
        ({}, 400, "malformed"),
        ({"code": "c"}, 400, "malformed"),
        ({"state": "s" * 32}, 400, "malformed"),
        ({"code": "c", "state": "bad state!"}, 400, "malformed"),
        ({"code": "c" * 5000, "state": "s" * 32}, 400, "malformed"),
        ({"error": "access_denied"}, 403, "access_denied"),
        ({"error": "<script>x</script>", "state": "s" * 32}, 403, "scriptxscript"),
    ],
)
async def test_malformed_and_refused_callbacks(arguments, status, match):
    with pytest.raises(SignInRefused, match=match) as caught:
        await party(LocalIssuer()).finish(arguments, {}, REDIRECT)
    assert caught.value.status == status


async def test_a_tampered_flow_cookie_is_refused():
    issuer = LocalIssuer()
    rp = party(issuer)
    start = await rp.begin("/app", REDIRECT)
    code, state = issuer.authorize(start.authorization_url)
    tampered = start.cookie_value[:-4] + ("AAAA" if not start.cookie_value.endswith("AAAA") else "BBBB")
    with pytest.raises(SignInRefused, match="not valid"):
        await rp.finish({"code": code, "state": state}, {start.cookie_name: tampered}, REDIRECT)


async def test_a_failed_token_exchange_is_refused():
    issuer = LocalIssuer()
    rp = RelyingParty(dataclasses.replace(settings(), client_secret="wrong"), SECRET, issuer)
    with pytest.raises(SignInRefused, match="invalid_client"):
        await signed_in(rp, issuer)


@pytest.mark.parametrize(
    ("overrides", "claims", "match"),
    [
        ({"allowed_users": ("bob",)}, {}, "'alice' is not allowed"),
        ({"allowed_groups": ("admins",)}, {}, "none of the groups"),
        ({"allowed_groups": ("admins",)}, {"groups": "staff"}, "none of the groups"),
        ({"allowed_groups": ("admins",)}, {"groups": None}, "none of the groups"),
        ({"user_claim": "upn"}, {}, "no upn claim"),
    ],
)
async def test_users_outside_the_allow_lists_are_refused(overrides, claims, match):
    issuer = LocalIssuer()
    with pytest.raises(SignInRefused, match=match):
        await signed_in(party(issuer, **overrides), issuer, **claims)


async def test_groups_may_be_a_nested_claim():
    issuer = LocalIssuer()
    rp = party(issuer, allowed_groups=("admins",), groups_claim="realm_access.roles")
    finished, _, _ = await signed_in(rp, issuer, realm_access={"roles": ["admins"]})
    assert finished.identity.user == "alice"


async def test_a_provider_that_cannot_be_reached_at_the_callback_answers_502():
    issuer = LocalIssuer()
    rp = party(issuer)
    start = await rp.begin("/app", REDIRECT)
    code, state = issuer.authorize(start.authorization_url)
    issuer.down = True
    with pytest.raises(SignInRefused) as caught:
        await rp.finish({"code": code, "state": state}, {start.cookie_name: start.cookie_value}, REDIRECT)
    assert caught.value.status == 502


# -- each request ---------------------------------------------------------------------------


async def test_no_cookie_and_bad_cookies_are_nobody():
    rp = party(LocalIssuer())
    assert (await rp.current(None)).identity is None
    for bad in ("", "garbage", "v1.AAAA"):
        current = await rp.current(bad)
        assert current.identity is None and current.clear_cookie and current.problem


async def test_an_ended_sign_in_without_refresh_token_is_nobody():
    clock = Clock()
    rp = party(LocalIssuer(), clock)
    now = clock()
    identity = Identity(user="alice", subject="user-1", expires_at=now + 1, issued_at=now - 300)
    value, _ = seal_identity(rp.sealer, identity, now)
    assert (await rp.current(value)).identity == identity
    clock.offset += 2
    current = await rp.current(value)
    assert current.identity is None and current.clear_cookie


async def test_a_sign_in_about_to_end_is_refreshed_and_resealed():
    issuer, clock = LocalIssuer(), Clock()
    rp = party(issuer, clock)
    finished, _, _ = await signed_in(rp, issuer)
    clock.offset += issuer.token_lifetime - 10
    issuer.token_lifetime = 3600
    current = await rp.current(finished.cookie_value)
    assert current.identity is not None and current.identity.expires_at > finished.identity.expires_at
    assert current.cookie_value is not None
    assert issuer.count("/token") == 2


async def test_concurrent_requests_share_one_refresh_and_late_ones_get_its_result():
    issuer, clock = LocalIssuer(), Clock()
    rp = party(issuer, clock)
    finished, _, _ = await signed_in(rp, issuer)
    clock.offset += issuer.token_lifetime + 5  # ended: only a refresh lets these in
    results = await asyncio.gather(*(rp.current(finished.cookie_value) for _ in range(5)))
    late = await rp.current(finished.cookie_value)  # still carrying the old cookie
    assert all(result.identity is not None for result in [*results, late])
    assert issuer.count("/token") == 2  # the code exchange and one refresh (the token was rotated)


async def test_a_refused_refresh_ends_the_sign_in():
    issuer, clock = LocalIssuer(), Clock()
    rp = party(issuer, clock)
    finished, _, _ = await signed_in(rp, issuer)
    issuer.refuse_refresh = True
    clock.offset += issuer.token_lifetime + 5
    current = await rp.current(finished.cookie_value)
    assert current.identity is None and current.clear_cookie


async def test_a_provider_down_at_refresh_time_keeps_the_cookie_for_later():
    issuer, clock = LocalIssuer(), Clock()
    rp = party(issuer, clock)
    finished, _, _ = await signed_in(rp, issuer)
    clock.offset += issuer.token_lifetime + 5
    issuer.down = True
    current = await rp.current(finished.cookie_value)
    assert (
        current.identity is None and not current.clear_cookie and "cannot be reached" in str(current.problem)
    )
    issuer.down = False  # not remembered as a refusal: the next request refreshes
    assert (await rp.current(finished.cookie_value)).identity is not None


async def test_a_refresh_that_no_longer_passes_the_allow_list_ends_the_sign_in():
    issuer = LocalIssuer()
    rp = party(issuer, allowed_groups=("staff",))
    finished, _, _ = await signed_in(rp, issuer)
    for claims in issuer.refresh_tokens.values():
        claims["groups"] = ["former-staff"]
    assert await rp.refresh(finished.identity) is None


# -- logout ----------------------------------------------------------------------------------


async def test_logout_goes_to_the_provider_with_the_id_token_hint():
    issuer = LocalIssuer()
    rp = party(issuer)
    finished, _, _ = await signed_in(rp, issuer)
    url = await rp.logout_redirect(finished.cookie_value, "https://apps.example.com/")
    assert url is not None
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(ISSUER + "/logout?")
    assert query["id_token_hint"] == [finished.identity.id_token]
    assert query["post_logout_redirect_uri"] == ["https://apps.example.com/"] and query["client_id"] == [
        CLIENT_ID
    ]
    assert "id_token_hint" not in (await rp.logout_redirect("garbage", "https://apps.example.com/") or "")


async def test_logout_without_an_end_session_endpoint_stays_here():
    rp = party(LocalIssuer(end_session=False))
    assert await rp.logout_redirect(None, "https://apps.example.com/") is None


# -- an open websocket's sign-in --------------------------------------------------------------


async def test_a_watched_sign_in_without_refresh_calls_on_expired_when_it_ends():
    rp = party(LocalIssuer())
    ended = asyncio.Event()
    now = time.time()
    identity = Identity(user="alice", subject="s", expires_at=now + 0.2, issued_at=now - 60)
    watch = SignInWatch(rp, identity, ended.set)
    await asyncio.wait_for(ended.wait(), 5)
    watch.stop()


async def test_a_watched_sign_in_is_refreshed_in_memory():
    issuer = LocalIssuer()
    rp = party(issuer)
    finished, _, _ = await signed_in(rp, issuer)
    ended = asyncio.Event()
    issuer.token_lifetime = 3600
    short = dataclasses.replace(finished.identity, expires_at=time.time() + 0.2, issued_at=time.time() - 1)
    watch = SignInWatch(rp, short, ended.set)
    for _ in range(100):  # bounded: 5 s at most
        if watch.refreshes:
            break
        await asyncio.sleep(0.05)
    assert watch.refreshes == 1 and not ended.is_set()
    assert watch.identity.expires_at > time.time() + 3000
    watch.stop()


async def test_a_stopped_watch_never_fires():
    rp = party(LocalIssuer())
    fired = []
    identity = Identity(user="alice", subject="s", expires_at=time.time() + 0.1, issued_at=time.time() - 60)
    SignInWatch(rp, identity, lambda: fired.append(1)).stop()
    await asyncio.sleep(0.3)
    assert fired == []


async def test_a_watch_retries_while_the_provider_cannot_be_reached(monkeypatch):
    issuer = LocalIssuer()
    rp = party(issuer)
    finished, _, _ = await signed_in(rp, issuer)
    monkeypatch.setattr("aperture.web.oidc_watch.RETRY_AFTER", 0.1)
    issuer.down, issuer.token_lifetime = True, 3600
    short = dataclasses.replace(finished.identity, expires_at=time.time() + 2, issued_at=time.time() - 60)
    ended = asyncio.Event()
    before = len(issuer.requests)
    watch = SignInWatch(rp, short, ended.set)
    for _ in range(100):  # bounded: 5 s at most, until two attempts failed
        if len(issuer.requests) - before >= 2:
            break
        await asyncio.sleep(0.05)
    assert len(issuer.requests) - before >= 2 and watch.refreshes == 0 and not ended.is_set()
    issuer.down = False
    for _ in range(100):
        if watch.refreshes:
            break
        await asyncio.sleep(0.05)
    assert watch.refreshes == 1 and not ended.is_set()
    watch.stop()


async def test_offline_access_asks_for_consent_and_plain_sign_ins_do_not():
    issuer = LocalIssuer()
    plain = await party(issuer).begin("/app", REDIRECT)
    assert "prompt" not in parse_qs(urlsplit(plain.authorization_url).query)
    offline = await party(issuer, scopes=("openid", "offline_access")).begin("/app", REDIRECT)
    assert parse_qs(urlsplit(offline.authorization_url).query)["prompt"] == ["consent"]


async def test_a_response_naming_another_issuer_is_refused_and_the_right_one_accepted():
    issuer = LocalIssuer()
    rp = party(issuer)
    start = await rp.begin("/app", REDIRECT)
    code, state = issuer.authorize(start.authorization_url)
    cookies = {start.cookie_name: start.cookie_value}
    with pytest.raises(SignInRefused, match="another provider"):
        await rp.finish({"code": code, "state": state, "iss": "https://evil.example"}, cookies, REDIRECT)
    start = await rp.begin("/app", REDIRECT)
    code, state = issuer.authorize(start.authorization_url)
    finished = await rp.finish(
        {"code": code, "state": state, "iss": ISSUER}, {start.cookie_name: start.cookie_value}, REDIRECT
    )
    assert finished.identity.user == "alice"


async def test_a_sign_in_does_not_open_under_other_sign_in_rules_even_with_the_same_key():
    issuer = LocalIssuer()
    finished, _, _ = await signed_in(party(issuer), issuer)
    for rules in ({"allowed_groups": ("admins",)}, {"allowed_users": ("bob",)}, {"client_id": "other"}):
        assert (await party(issuer, **rules).current(finished.cookie_value)).identity is None, rules
    assert (await party(issuer).current(finished.cookie_value)).identity is not None

"""Every way the sign-in can be abused is refused: a clear page, a log line, never a traceback.

The provider is real; between Aperture and its token endpoint sits a ``TokenProxy`` (the
provider's discovery document names the proxy as its token endpoint), so a test can hand
Aperture an id_token the provider never issued: re-signed with another key, with another
audience or issuer, expired, from the future, with another nonce, or an earlier real one
replayed. The other abuses need no proxy: callbacks replayed or mixed between browsers, cookies
tampered with, open redirects through ``next``, a user outside the allowed groups. A browser
signed in at the start still works at the end, and the refusals are counted in the metrics.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.identity.helpers import (
    ALLOW_SELF,
    FLOW_COOKIE_PREFIX,
    REFUSAL_LOG,
    SESSION_COOKIE,
    WHOAMI,
    aperture_cookies,
    assert_refusal_page,
    open_websocket,
    page_token,
    run,
    slider_round_trip,
)
from tests.support.oidc import (
    CLIENT_ID,
    OidcProvider,
    SignInClient,
    TokenProxy,
    aperture_args,
    aperture_env,
    new_signing_key,
    provider_and_proxy,
    require_provider,
    sign,
    token_parts,
)
from tests.support.servers import LogMark, ServerProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def provider_proxy(
    tmp_path_factory: pytest.TempPathFactory, serving_bokeh: bool
) -> Iterator[tuple[OidcProvider, TokenProxy]]:
    if serving_bokeh:
        pytest.skip("bokeh serve has no built-in OpenID Connect sign-in")
    require_provider()
    provider, proxy = provider_and_proxy(tmp_path_factory.mktemp("provider"))
    try:
        yield provider, proxy
    finally:
        provider.stop()
        proxy.stop()


@pytest.fixture(scope="module")
def provider(provider_proxy: tuple[OidcProvider, TokenProxy]) -> OidcProvider:
    return provider_proxy[0]


@pytest.fixture
def proxy(provider_proxy: tuple[OidcProvider, TokenProxy]) -> Iterator[TokenProxy]:
    tamper = provider_proxy[1]
    tamper.rewrite = None
    yield tamper
    tamper.rewrite = None


@pytest.fixture(scope="module")
def server(module_server_factory: Any, provider: OidcProvider) -> ServerProcess:
    args = aperture_args(provider, "--oidc-pass-claims", "email", "--metrics", ALLOW_SELF)
    started = module_server_factory([WHOAMI], args, env=aperture_env())
    provider.allow(started.base_url)
    return started


@pytest.fixture(scope="module")
def admins_only(module_server_factory: Any, provider: OidcProvider) -> ServerProcess:
    args = aperture_args(provider, "--oidc-allowed-groups", "admins", ALLOW_SELF)
    # Another deployment: its own key, so the other server's cookies mean nothing here.
    env = aperture_env(BOKEH_SECRET_KEY="another-deployment-key-" + "q" * 32)
    started = module_server_factory([WHOAMI], args, env=env)
    provider.allow(started.base_url)
    return started


@pytest.fixture(scope="module")
def admins_same_key(module_server_factory: Any, provider: OidcProvider) -> ServerProcess:
    """Another deployment that shares the first one's key (and host): only its allow-list differs."""
    args = aperture_args(provider, "--oidc-allowed-groups", "admins", ALLOW_SELF)
    started = module_server_factory([WHOAMI], args, env=aperture_env())
    provider.allow(started.base_url)
    return started


@pytest.fixture(scope="module")
def bystander(server: ServerProcess) -> tuple[SignInClient, str]:
    """A browser signed in before any abuse; it must still work after all of it."""
    client = SignInClient()
    page = client.sign_in(server.url("/whoami"), user="bob")
    return client, page_token(page)


def refused_sign_in(server: ServerProcess, *, user: str = "alice") -> tuple[SignInClient, str]:
    """A whole sign-in that Aperture must refuse at the callback: the client and the log line."""
    mark = LogMark(server)
    client = SignInClient()
    reply = client.sign_in(server.url("/whoami"), user=user)
    assert reply.url.startswith(server.url("/oidc/callback")), (reply.status, reply.url)
    assert_refusal_page(reply)
    line = mark.wait_for(REFUSAL_LOG)
    assert_not_signed_in(client, server)
    assert "Traceback" not in mark.new()
    return client, line


def assert_not_signed_in(client: SignInClient, server: ServerProcess) -> None:
    again = client.get(server.url("/whoami"))
    assert again.status == 302 and again.location is not None, (again.status, again.body[:300])
    assert again.location.startswith(server.url("/oidc/login")), again.location


def resigned(provider: OidcProvider, change: Callable[[dict[str, Any]], None]) -> Callable[[str], str]:
    """A rewrite: the provider's claims changed by ``change``, signed with the provider's own key."""

    def rewrite(token: str) -> str:
        _header, claims = token_parts(token)
        change(claims)
        return sign(claims, provider.signing_key)

    return rewrite


# -- id_tokens the provider never issued ----------------------------------------------------------


def test_id_token_signed_with_another_key_under_the_providers_kid(
    server: ServerProcess, provider: OidcProvider, proxy: TokenProxy, bystander: Any
) -> None:
    forger = new_signing_key(kid=provider.signing_key["kid"])
    proxy.rewrite = lambda token: sign(token_parts(token)[1], forger)
    _, line = refused_sign_in(server)
    assert "signature" in line.lower() or "key" in line.lower(), line


def test_id_token_signed_with_an_unknown_key(server: ServerProcess, proxy: TokenProxy) -> None:
    forger = new_signing_key(kid="attacker-key")
    proxy.rewrite = lambda token: sign(token_parts(token)[1], forger)
    refused_sign_in(server)


def test_unsigned_id_token(server: ServerProcess, proxy: TokenProxy) -> None:
    def unsigned(token: str) -> str:
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        return f"{header}.{token.split('.')[1]}."

    proxy.rewrite = unsigned
    refused_sign_in(server)


def test_id_token_hmac_signed_with_the_public_key(
    server: ServerProcess, provider: OidcProvider, proxy: TokenProxy
) -> None:
    """The old algorithm-confusion attack: HS256 with the provider's public key as the secret."""
    from joserfc.jwk import RSAKey

    public_pem = RSAKey.import_key(provider.signing_key).as_pem(private=False)

    def confused(token: str) -> str:
        header = {"alg": "HS256", "typ": "JWT", "kid": provider.signing_key["kid"]}
        encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
        signing_input = f"{encoded}.{token.split('.')[1]}".encode()
        mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
        return signing_input.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    proxy.rewrite = confused
    refused_sign_in(server)


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("another audience", lambda c: c.update(aud="someone-else")),
        ("several audiences, authorized party another", lambda c: c.update(aud=[CLIENT_ID, "x"], azp="x")),
        ("another issuer", lambda c: c.update(iss="http://127.0.0.1:1/evil")),
        ("expired", lambda c: c.update(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
        (
            "issued in the future",
            lambda c: c.update(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200),
        ),
        ("another nonce", lambda c: c.update(nonce=secrets.token_urlsafe(24))),
        ("no nonce", lambda c: c.pop("nonce")),
        ("no subject", lambda c: c.pop("sub")),
    ],
)
def test_id_token_with_wrong_claims_signed_by_the_provider(
    server: ServerProcess, provider: OidcProvider, proxy: TokenProxy, what: str, change: Any
) -> None:
    proxy.rewrite = resigned(provider, change)
    refused_sign_in(server)


def test_replayed_id_token_of_an_earlier_sign_in(server: ServerProcess, proxy: TokenProxy) -> None:
    """A real, unexpired id_token, but for another sign-in: its nonce is not this flow's."""
    earlier = SignInClient()
    assert earlier.sign_in(server.url("/whoami")).status == 200
    captured = proxy.seen[-1]
    proxy.rewrite = lambda _token: captured
    _, line = refused_sign_in(server)
    assert "nonce" in line.lower(), line


# -- callbacks replayed or mixed up ----------------------------------------------------------------


def flow_cookie(client: SignInClient) -> Any:
    """The one cookie Aperture set when a sign-in began (before its callback)."""
    cookies = list(aperture_cookies(client).values())
    assert len(cookies) == 1, [c.name for c in cookies]
    return cookies[0]


def test_the_same_callback_twice(server: ServerProcess) -> None:
    client = SignInClient()
    callback = client.callback_url(server.url("/whoami"))
    saved = flow_cookie(client)
    first = client.follow(callback)
    assert first.status == 200 and first.url == server.url("/whoami")
    session_names = set(aperture_cookies(client))

    mark = LogMark(server)
    client.drop_cookies(lambda name: name in session_names)
    assert_refusal_page(client.get(callback))  # the flow cookie was cleared when it was used
    mark.wait_for(REFUSAL_LOG)

    # Even with the used flow cookie put back, the code is spent: the provider refuses it.
    mark = LogMark(server)
    client.put_cookie(saved)
    assert_refusal_page(client.get(callback))
    mark.wait_for(REFUSAL_LOG)
    assert_not_signed_in(client, server)


def test_callback_from_another_browsers_sign_in(server: ServerProcess) -> None:
    victim, attacker = SignInClient(), SignInClient()
    attacker_callback = attacker.callback_url(server.url("/whoami"), user="bob")
    victim.callback_url(server.url("/whoami"), user="alice")  # the victim's own flow is in flight
    mark = LogMark(server)
    assert_refusal_page(victim.get(attacker_callback))
    mark.wait_for(REFUSAL_LOG)
    assert_not_signed_in(victim, server)


def test_callback_whose_state_does_not_match_the_flow_cookie(server: ServerProcess) -> None:
    client = SignInClient()
    callback = client.callback_url(server.url("/whoami"))
    mine = flow_cookie(client)
    other = SignInClient()
    other_callback = other.callback_url(server.url("/whoami"))
    other_state = urllib.parse.parse_qs(urllib.parse.urlsplit(other_callback).query)["state"][0]
    own_state = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["state"][0]
    # This browser's sealed flow, stored under the name the other flow's state selects.
    prefix = mine.name[: len(mine.name) - len(own_state[:16])]
    assert mine.name == prefix + own_state[:16], (mine.name, own_state)
    client.put_cookie(mine, name=prefix + other_state[:16])
    mark = LogMark(server)
    assert_refusal_page(client.get(other_callback))
    assert "state" in mark.wait_for(REFUSAL_LOG).lower()


def test_callback_with_a_code_the_provider_never_issued(server: ServerProcess) -> None:
    client = SignInClient()
    callback = client.callback_url(server.url("/whoami"))
    forged = re.sub(r"code=[^&]+", "code=" + secrets.token_urlsafe(32), callback)
    mark = LogMark(server)
    assert_refusal_page(client.get(forged))
    mark.wait_for(REFUSAL_LOG)
    assert_not_signed_in(client, server)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("code=abc", 400),
        ("state=abc", 400),
        ("code=abc&state=" + "s" * 5000, 400),
        ("code=abc&state=%00%01%02", 400),
        ("code=abc&state=abcdefghijklmnopqrstuvwxyz0123456789", 403),
        (
            "error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=" + "e" * 24,
            403,
        ),
    ],
)
def test_malformed_or_failed_callbacks(server: ServerProcess, query: str, status: int) -> None:
    mark = LogMark(server)
    reply = SignInClient().get(server.url("/oidc/callback?" + query))
    assert_refusal_page(reply, status=status)
    assert "<script>" not in reply.body
    mark.wait_for(REFUSAL_LOG)
    assert "Traceback" not in mark.new()


# -- cookies tampered with -------------------------------------------------------------------------


def flipped(value: str, at: int) -> str:
    position = at % len(value)
    swapped = "A" if value[position] != "A" else "B"
    return value[:position] + swapped + value[position + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: flipped(v, len(v) // 2),
        lambda v: flipped(v, 0),
        lambda v: flipped(v, -1),
        lambda v: v[: len(v) // 2],
        lambda v: v + "A",
        lambda v: "",
        lambda v: "not-a-sealed-value",
        lambda v: "A" * 3800,
    ],
    ids=["middle", "first", "last", "truncated", "extended", "empty", "garbage", "big"],
)
def test_tampered_session_cookie_is_not_a_sign_in(server: ServerProcess, tamper: Any) -> None:
    client = SignInClient()
    assert client.sign_in(server.url("/whoami")).status == 200
    (session,) = aperture_cookies(client).values()
    client.put_cookie(session, value=tamper(session.value))
    mark = LogMark(server)
    reply = client.get(server.url("/whoami"))
    assert reply.status == 302, (reply.status, reply.body[:300])
    assert reply.location is not None and reply.location.startswith(server.url("/oidc/login?next="))
    token = page_token(client.sign_in(server.url("/whoami")))  # signing in again works
    assert token
    assert "Traceback" not in mark.new()


def test_flow_cookie_presented_as_the_session_cookie(server: ServerProcess) -> None:
    """Each sealed cookie has its purpose: a flow cookie is no sign-in, even though it is genuine."""
    client = SignInClient()
    client.callback_url(server.url("/whoami"))
    mine = flow_cookie(client)
    client.put_cookie(mine, name=SESSION_COOKIE)
    assert_not_signed_in(client, server)


def test_tampered_flow_cookie_is_refused(server: ServerProcess) -> None:
    client = SignInClient()
    callback = client.callback_url(server.url("/whoami"))
    mine = flow_cookie(client)
    client.put_cookie(mine, value=flipped(mine.value, len(mine.value) // 2))
    mark = LogMark(server)
    assert_refusal_page(client.get(callback))
    mark.wait_for(REFUSAL_LOG)


def test_many_sign_ins_started_do_not_pile_up_cookies(server: ServerProcess) -> None:
    client = SignInClient()
    for _ in range(12):
        reply = client.get(server.url("/oidc/login?next=/whoami"))
        assert reply.status == 302
    flows = [name for name in aperture_cookies(client) if name.startswith(FLOW_COOKIE_PREFIX)]
    assert 1 <= len(flows) <= 6, flows
    assert len(client.cookie_header(server.url("/"))) < 8000


# -- open redirects through the return path --------------------------------------------------------


@pytest.mark.parametrize(
    "next_query",
    [
        "next=//evil.example",
        "next=https://evil.example",
        "next=/%5Cevil.example",
        "next=%2F%2Fevil.example",
        "next=%2F%5Cevil.example",
        "next=%5C%5Cevil.example",
        "next=/%09/evil.example",
        "next=https:%2F%2Fevil.example",
        "next=%252F%252Fevil.example",
        "next=///evil.example",
        "next=javascript:alert(1)",
        "next=/%0d%0aSet-Cookie:%20x=1",
        "next=" + "/a" * 3000,
    ],
)
def test_open_redirect_through_next_lands_on_the_root(server: ServerProcess, next_query: str) -> None:
    client = SignInClient()
    client.sign_in(server.url("/oidc/login?" + next_query))
    callbacks = [reply for reply in client.hops if reply.url.startswith(server.url("/oidc/callback"))]
    assert len(callbacks) == 1, [(r.status, r.url) for r in client.hops]
    (callback,) = callbacks
    assert callback.status == 302, (callback.status, callback.body[:300])
    assert callback.headers["location"] in ("/", server.url("/")), callback.headers["location"]
    assert "Set-Cookie: x" not in str(callback.headers)
    for reply in client.hops:
        target = urllib.parse.urlsplit(reply.location or reply.url)
        assert target.hostname == "127.0.0.1", (reply.status, reply.url, reply.location)


def test_a_good_next_is_kept(server: ServerProcess) -> None:
    client = SignInClient()
    page = client.sign_in(server.url("/oidc/login?next=" + urllib.parse.quote("/whoami?a=1&b=%2F", safe="")))
    assert page.status == 200 and page.url == server.url("/whoami?a=1&b=%2F")


# -- who may sign in -------------------------------------------------------------------------------


def test_user_outside_the_allowed_groups_is_refused(admins_only: ServerProcess) -> None:
    _, line = refused_sign_in(admins_only, user="bob")
    assert "group" in line.lower(), line


def test_user_in_an_allowed_group_signs_in(admins_only: ServerProcess) -> None:
    client = SignInClient()
    page = client.sign_in(admins_only.url("/whoami"), user="alice")
    assert page.status == 200 and page.url == admins_only.url("/whoami")


def test_a_sign_in_from_another_deployment_is_not_accepted(
    server: ServerProcess, admins_only: ServerProcess
) -> None:
    """Browsers send cookies to every port of a host: a sign-in sealed by another key is nobody."""
    client = SignInClient()
    assert client.sign_in(server.url("/whoami"), user="bob").status == 200
    assert_not_signed_in(client, admins_only)


def test_a_sign_in_from_a_deployment_sharing_the_key_but_not_the_allow_list_is_not_accepted(
    server: ServerProcess, admins_same_key: ServerProcess
) -> None:
    """The same BOKEH_SECRET_KEY on one host: bob's sign-in for the open deployment must not let him
    past the other's --oidc-allowed-groups (the cookie is bound to the deployment's sign-in rules)."""
    client = SignInClient()
    assert client.sign_in(server.url("/whoami"), user="bob").status == 200
    assert_not_signed_in(client, admins_same_key)


def test_sign_in_cancelled_at_the_provider_is_refused(server: ServerProcess) -> None:
    """The user cancels at the provider's login form: it sends ``error=access_denied`` back."""
    client = SignInClient()
    form = client.follow(server.url("/whoami"))  # no user: stops at the provider's login form
    found = client.provider_form(form)
    assert found is not None, form.body[:500]
    mark = LogMark(server)
    reply = client.follow_on(client.get(found[0] + "/abort"))
    assert reply.url.startswith(server.url("/oidc/callback?")) and "error=access_denied" in reply.url, (
        reply.url
    )
    assert_refusal_page(reply)
    mark.wait_for(REFUSAL_LOG)
    assert_not_signed_in(client, server)


# -- afterwards ------------------------------------------------------------------------------------


def test_the_bystander_still_works_and_refusals_were_counted(
    server: ServerProcess, bystander: tuple[SignInClient, str]
) -> None:
    client, token = bystander

    async def still_works() -> None:
        ws = await open_websocket(client, server.url("/whoami"), token)
        try:
            await slider_round_trip(ws, 3)
        finally:
            await ws.close()

    run(still_works())
    assert client.get(server.url("/whoami")).status == 200
    metrics = SignInClient().get(server.url("/metrics")).body
    match = re.search(r'^aperture_errors_total\{kind="oidc"\} (\S+)$', metrics, re.MULTILINE)
    refusals = len(re.findall(REFUSAL_LOG, server.logs()))
    counted = float(match.group(1)) if match else 0.0  # the kind appears with its first error
    assert counted == refusals, (refusals, metrics[:3000])
    assert "Traceback" not in server.logs()

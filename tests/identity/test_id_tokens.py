"""id_token verification with real keys and signatures: what is accepted, and every forgery refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import pytest

from aperture.identity.discovery import Discovery, ProviderMetadata
from aperture.identity.id_tokens import Expected, TokenRefused, check_claims, verify_id_token
from aperture.identity.keys import ProviderKeys
from aperture.identity.transport import ProviderError
from tests.identity.local_issuer import CLIENT_ID, ISSUER, LocalIssuer, make_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(min_refetch: float = 60.0) -> tuple[LocalIssuer, ProviderKeys, Clock]:
    issuer, clock = LocalIssuer(), Clock()

    async def jwks_uri() -> str:
        return ISSUER + "/jwks"

    return issuer, ProviderKeys(jwks_uri, issuer, min_refetch=min_refetch, clock=clock), clock


def expected(nonce: str | None = "n-1", **overrides) -> Expected:
    values = dict(issuer=ISSUER, client_id=CLIENT_ID, algorithms=("RS256",), nonce=nonce, now=time.time())
    values.update(overrides)
    return Expected(**values)


def b64(value: dict | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def refused(token: str, keys: ProviderKeys, match: str, **overrides) -> None:
    with pytest.raises(TokenRefused, match=match) as caught:
        await verify_id_token(token, keys, expected(**overrides))
    assert token not in str(caught.value)


async def test_a_valid_token_gives_its_claims():
    issuer, keys, _ = setup()
    claims = await verify_id_token(issuer.id_token(nonce="n-1"), keys, expected())
    assert claims["preferred_username"] == "alice" and claims["sub"] == "user-1"


async def test_a_token_signed_by_another_key_with_the_same_kid_is_refused():
    issuer, keys, _ = setup()
    forger = make_key("key-1")
    await refused(issuer.id_token(key=forger, nonce="n-1"), keys, "signature does not verify")


async def test_a_token_with_a_changed_claim_is_refused():
    issuer, keys, _ = setup()
    header, _, signature = issuer.id_token(nonce="n-1").split(".")
    now = int(time.time())
    payload = b64(
        {"iss": ISSUER, "aud": CLIENT_ID, "sub": "admin", "iat": now, "exp": now + 60, "nonce": "n-1"}
    )
    await refused(f"{header}.{payload}.{signature}", keys, "signature does not verify")


async def test_alg_none_is_refused():
    issuer, keys, _ = setup()
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "x", "iat": now, "exp": now + 60, "nonce": "n-1"}
    token = f"{b64({'alg': 'none', 'kid': 'key-1'})}.{b64(claims)}."
    await refused(token, keys, "algorithm 'none'")


async def test_hs256_signed_with_the_public_key_as_secret_is_refused():
    issuer, keys, _ = setup()
    public_pem = issuer.signing_key.as_pem(private=False)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "x", "iat": now, "exp": now + 60, "nonce": "n-1"}
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'key-1'})}.{b64(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()  # the attacker's own HMAC
    token = f"{signing_input}.{b64(mac)}"
    await refused(token, keys, "algorithm 'HS256'")
    # even if a misconfigured list allowed it, an RSA key cannot verify an HMAC
    await refused(token, keys, "signature does not verify", algorithms=("RS256", "HS256"))


@pytest.mark.parametrize(
    ("claims", "match"),
    [
        ({"aud": "someone-else"}, "another client"),
        ({"aud": ["someone-else", "third"]}, "another client"),
        ({"aud": [CLIENT_ID, "other"], "azp": "other"}, "authorized party"),
        ({"aud": [CLIENT_ID, "other"]}, "authorized party"),
        ({"iss": "https://evil.test/realm"}, "another issuer"),
        ({"iss": ISSUER + "/"}, "another issuer"),
        ({"exp": int(time.time()) - 600}, "expired"),
        ({"exp": None}, "expired"),
        ({"exp": "tomorrow"}, "expired"),
        ({"iat": int(time.time()) + 600}, "in the future"),
        ({"iat": None}, "in the future"),
        ({"nonce": None}, "no nonce"),
        ({"nonce": "someone-elses"}, "nonce is not"),
        ({"sub": ""}, "no subject"),
    ],
)
async def test_claims_that_do_not_bind_the_token_to_this_sign_in_are_refused(claims, match):
    issuer, keys, _ = setup()
    await refused(issuer.id_token(**{"nonce": "n-1", **claims}), keys, match)


async def test_several_audiences_need_our_client_as_authorized_party():
    issuer, keys, _ = setup()
    token = issuer.id_token(nonce="n-1", aud=[CLIENT_ID, "other"], azp=CLIENT_ID)
    assert (await verify_id_token(token, keys, expected()))["azp"] == CLIENT_ID


async def test_a_refreshed_token_needs_no_nonce():
    issuer, keys, _ = setup()
    assert await verify_id_token(issuer.id_token(), keys, expected(nonce=None))


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c", "x" * 40_000, "é.é.é", "..", "e30.e30.e30"])
async def test_malformed_tokens_are_refused(token):
    _, keys, _ = setup()
    with pytest.raises(TokenRefused):
        await verify_id_token(token, keys, expected())


async def test_an_unknown_kid_refetches_once_then_is_refused():
    issuer, keys, clock = setup()
    await verify_id_token(issuer.id_token(nonce="n-1"), keys, expected())
    assert issuer.count("/jwks") == 1
    stranger = make_key("key-unknown")
    await refused(issuer.id_token(key=stranger, nonce="n-1"), keys, "does not publish")
    assert issuer.count("/jwks") == 2
    # within the refetch interval, more unknown kids cost the provider nothing
    for n in range(5):
        await refused(issuer.id_token(key=make_key(f"k{n}"), nonce="n-1"), keys, "does not publish")
    assert issuer.count("/jwks") == 2
    clock.now += 61
    await refused(issuer.id_token(key=stranger, nonce="n-1"), keys, "does not publish")
    assert issuer.count("/jwks") == 3


async def test_a_rotated_key_is_picked_up_at_once():
    issuer, keys, _ = setup()
    await verify_id_token(issuer.id_token(nonce="n-1"), keys, expected())
    issuer.signing_key = make_key("key-2")
    issuer.published.append(issuer.signing_key)
    assert await verify_id_token(issuer.id_token(nonce="n-1"), keys, expected())
    assert issuer.count("/jwks") == 2


async def test_concurrent_unknown_kids_cost_one_refetch():
    issuer, keys, _ = setup()
    await verify_id_token(issuer.id_token(nonce="n-1"), keys, expected())
    tokens = [issuer.id_token(key=make_key(f"k{n}"), nonce="n-1") for n in range(4)]
    results = await asyncio.gather(
        *(verify_id_token(token, keys, expected()) for token in tokens), return_exceptions=True
    )
    assert all(isinstance(result, TokenRefused) for result in results)
    assert issuer.count("/jwks") == 2


async def test_concurrent_tokens_signed_with_a_new_key_share_one_refetch():
    issuer, keys, _ = setup()
    await verify_id_token(issuer.id_token(nonce="n-1"), keys, expected())
    issuer.signing_key = make_key("key-2")
    issuer.published.append(issuer.signing_key)
    tokens = [issuer.id_token(nonce="n-1") for _ in range(4)]
    await asyncio.gather(*(verify_id_token(token, keys, expected()) for token in tokens))
    assert issuer.count("/jwks") == 2


async def test_a_provider_down_when_keys_are_needed_is_a_provider_error():
    issuer, keys, _ = setup()
    issuer.down = True
    with pytest.raises(ProviderError):
        await verify_id_token(issuer.id_token(nonce="n-1"), keys, expected())


# -- discovery ------------------------------------------------------------------------


async def test_discovery_reads_the_document_once_per_ttl():
    issuer, clock = LocalIssuer(), Clock()
    discovery = Discovery(ISSUER, issuer, ttl=100, clock=clock)
    first = await discovery.metadata()
    assert first.token_endpoint == ISSUER + "/token" and first.end_session_endpoint == ISSUER + "/logout"
    await discovery.metadata()
    assert issuer.count("openid-configuration") == 1
    clock.now += 101
    issuer.down = True  # a failing refetch keeps what was held
    assert await discovery.metadata() == first


async def test_discovery_for_another_issuer_is_refused():
    issuer = LocalIssuer(issuer="https://evil.test/realm")
    with pytest.raises(ProviderError, match="names the issuer"):
        await Discovery(ISSUER, issuer).metadata()


def test_only_asymmetric_algorithms_are_ever_accepted():
    document = LocalIssuer().document
    for offered in (["none"], ["HS256"], ["HS256", "none"]):
        with pytest.raises(ProviderError, match="refuses"):
            ProviderMetadata.from_document(
                {**document, "id_token_signing_alg_values_supported": offered}, ISSUER
            )
    mixed = ProviderMetadata.from_document(
        {**document, "id_token_signing_alg_values_supported": ["HS256", "RS256", "ES256", "none"]}, ISSUER
    )
    assert mixed.algorithms == ("RS256", "ES256")


def test_token_endpoint_authentication_follows_what_the_provider_offers():
    document = LocalIssuer().document
    assert ProviderMetadata.from_document(document, ISSUER).token_auth_method == "client_secret_basic"
    only_post = {**document, "token_endpoint_auth_methods_supported": ["client_secret_post"]}
    assert ProviderMetadata.from_document(only_post, ISSUER).token_auth_method == "client_secret_post"


def test_a_document_without_required_endpoints_is_refused():
    document = {k: v for k, v in LocalIssuer().document.items() if k != "jwks_uri"}
    with pytest.raises(ProviderError, match="jwks_uri"):
        ProviderMetadata.from_document(document, ISSUER)


def test_googles_scheme_less_issuer_is_accepted_for_google_only():
    now = time.time()
    claims = {"iss": "accounts.google.com", "aud": CLIENT_ID, "sub": "1", "iat": now, "exp": now + 60}
    check_claims(claims, expected(nonce=None, issuer="https://accounts.google.com"))
    with pytest.raises(TokenRefused, match="another issuer"):
        check_claims(claims, expected(nonce=None))

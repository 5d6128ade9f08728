"""Sealed cookies: round trips, purposes kept apart, and every way a cookie can be bad."""

from __future__ import annotations

import base64

import pytest

from aperture.config import OidcSettings
from aperture.identity.cookies import (
    FLOW,
    SESSION,
    CookieInvalid,
    CookieSealer,
    CookieTooLarge,
    deployment_secret,
)
from aperture.identity.flow import SignInRefused
from aperture.identity.signins import Identity, open_identity, seal_identity


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


SECRET = b"a-deployment-secret-of-some-length"


def sealer(clock: Clock | None = None, secret: bytes = SECRET) -> CookieSealer:
    return CookieSealer(secret, clock=clock or Clock())


def test_a_sealed_value_opens_with_the_same_secret_on_another_instance():
    clock = Clock()
    value = sealer(clock).seal(SESSION, {"u": "alice", "n": [1, 2]}, clock.now + 60)
    assert sealer(clock).open(SESSION, value) == {"u": "alice", "n": [1, 2]}
    assert "alice" not in value and value.startswith("v1.")


def test_two_seals_of_the_same_data_differ():
    clock = Clock()
    one, two = (sealer(clock).seal(SESSION, {"u": "alice"}, clock.now + 60) for _ in range(2))
    assert one != two


def test_a_value_sealed_for_one_purpose_does_not_open_as_another():
    clock = Clock()
    value = sealer(clock).seal(FLOW, {"u": "alice"}, clock.now + 60)
    with pytest.raises(CookieInvalid, match="altered"):
        sealer(clock).open(SESSION, value)


def test_another_secret_does_not_open_it():
    clock = Clock()
    value = sealer(clock).seal(SESSION, {"u": "alice"}, clock.now + 60)
    with pytest.raises(CookieInvalid, match="another key"):
        sealer(clock, b"some-other-deployment-secret").open(SESSION, value)


def test_an_expired_value_does_not_open():
    clock = Clock()
    value = sealer(clock).seal(SESSION, {"u": "alice"}, clock.now + 60)
    clock.now += 60
    with pytest.raises(CookieInvalid, match="expired"):
        sealer(clock).open(SESSION, value)


def test_every_altered_character_is_noticed():
    clock = Clock()
    value = sealer(clock).seal(SESSION, {"u": "alice"}, clock.now + 60)
    for index in range(3, len(value)):
        swapped = "A" if value[index] != "A" else "B"
        altered = value[:index] + swapped + value[index + 1 :]
        with pytest.raises(CookieInvalid):
            sealer(clock).open(SESSION, altered)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "v1.",
        "v1.!!!!",
        "v1." + "A" * 10,
        "v2." + "A" * 80,
        "alice",
        "v1." + "A" * 20_000,
        "v1.\x00\x01",
        "v1." + base64.urlsafe_b64encode(b"\x00" * 64).decode(),
    ],
)
def test_garbage_is_refused_with_a_reason(value):
    with pytest.raises(CookieInvalid):
        sealer().open(SESSION, value)


def test_what_does_not_fit_in_a_cookie_is_refused_before_it_is_set():
    clock = Clock()
    with pytest.raises(CookieTooLarge):
        sealer(clock).seal(SESSION, {"blob": [str(n) * 3 for n in range(4000)]}, clock.now + 60)


def test_the_deployment_secret_is_bokeh_secret_key_else_the_cookie_secret():
    assert deployment_secret(b"key", "cookie") == b"key"
    assert deployment_secret(None, "cookie") == b"cookie"
    with pytest.raises(ValueError):
        deployment_secret(None, None)


def identity(**overrides):
    values = dict(
        user="alice",
        subject="user-1",
        claims={"preferred_username": "alice"},
        expires_at=1_000_300.0,
        refresh_token="r" * 40,
        id_token="i" * 900,
        issued_at=1_000_000.0,
    )
    values.update(overrides)
    return Identity(**values)


def test_a_sign_in_round_trips_through_its_cookie_within_4_kb():
    clock = Clock()
    value, until = seal_identity(sealer(clock), identity(), clock.now)
    assert len("aperture_oidc=" + value + "; Path=/; HttpOnly; SameSite=Lax; Secure") < 4096
    assert until > 1_000_300.0  # kept past the id_token's end: it can be refreshed
    assert open_identity(sealer(clock), value) == identity()


def test_without_a_refresh_token_the_cookie_ends_with_the_sign_in():
    clock = Clock()
    _, until = seal_identity(sealer(clock), identity(refresh_token=None), clock.now)
    assert until == 1_000_300.0


def test_an_oversized_sign_in_drops_the_id_token_then_the_refresh_token():
    clock = Clock()
    big_id_token = "".join(f"{n:x}" for n in range(9000))  # varied, so compression cannot shrink it enough
    value, _ = seal_identity(sealer(clock), identity(id_token=big_id_token), clock.now)
    opened = open_identity(sealer(clock), value)
    assert opened.id_token is None and opened.refresh_token == "r" * 40
    huge = "".join(f"{n:x}" for n in range(9000))
    value, until = seal_identity(sealer(clock), identity(id_token=huge, refresh_token=huge), clock.now)
    opened = open_identity(sealer(clock), value)
    assert opened.refresh_token is None and until == 1_000_300.0


def test_a_sign_in_that_cannot_fit_is_refused():
    clock = Clock()
    claims = {"blob": "".join(f"{n:x}" for n in range(9000))}
    with pytest.raises(SignInRefused, match="too big"):
        seal_identity(sealer(clock), identity(claims=claims), clock.now)


def test_a_session_cookie_with_missing_fields_is_not_a_sign_in():
    clock = Clock()
    value = sealer(clock).seal(SESSION, {"u": "alice"}, clock.now + 60)
    with pytest.raises(CookieInvalid, match="incomplete"):
        open_identity(sealer(clock), value)


def test_settings_are_not_needed_to_open_a_cookie():
    # OidcSettings repr never shows the client secret (it may end up in logs)
    settings = OidcSettings(issuer="https://i", client_id="c", client_secret="hidden")
    assert "hidden" not in repr(settings)

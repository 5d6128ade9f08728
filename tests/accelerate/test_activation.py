"""Turning the accelerators on and off: the switch, the version check, and the end-to-end proof
that a server with them sends exactly what a server without them sends."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from aperture.accelerate import activation
from aperture.config import resolve
from aperture.errors import ConfigError
from tests.support.wsclient import BokehClient, fetch_token, model_changed, model_id, ws_url

APP = "examples/sliders.py"


def test_on_by_default_off_by_flag_or_environment() -> None:
    assert resolve({}, {}).accelerate
    assert not resolve({"no_accelerate": True}, {}).accelerate
    assert not resolve({}, {"APERTURE_ACCELERATE": "no"}).accelerate
    assert resolve({}, {"APERTURE_ACCELERATE": "yes"}).accelerate
    assert not resolve({"no_accelerate": True}, {"APERTURE_ACCELERATE": "yes"}).accelerate
    with pytest.raises(ConfigError, match="APERTURE_ACCELERATE"):
        resolve({}, {"APERTURE_ACCELERATE": "fast"})


@pytest.fixture
def restored() -> Iterator[None]:
    was = activation.active()
    yield
    activation.activate(was)


def test_only_verified_bokeh_versions(restored: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="aperture.accelerate"):
        assert not activation.activate(True, version="3.8.2")
    assert not activation.active()
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "3.8.2" in record.getMessage()
    assert "3.9.2" in record.getMessage()  # says which versions were verified
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="aperture.accelerate"):
        assert activation.activate(True, version="3.9.2")
        assert activation.active()
        assert not activation.activate(False)
    assert not activation.active()
    assert [r.getMessage() for r in caplog.records] == [
        "Accelerators off (--no-accelerate / APERTURE_ACCELERATE=no)"
    ]


async def _first_session(server: Any) -> list[Any]:
    """What a fresh server sends its first session: the PULL-DOC reply, then the PATCH-DOCs a slider
    move and a title edit cause (model ids are the same in two fresh processes)."""
    page = server.url("/sliders")
    client = await BokehClient.connect(ws_url(page), fetch_token(page))
    try:
        pulled = await client.pull()
        seen: list[Any] = [(pulled.content, pulled.buffers)]
        doc = pulled.content
        for name, attr, value in (
            ("amplitude", "value", 2.5),
            ("title", "value", "moved"),
            ("phase", "value", 1),
        ):
            ok, before = await client.reply_to(
                await client.send("PATCH-DOC", model_changed(model_id(doc, name), attr, value))
            )
            assert ok.msgtype == "OK"
            seen.extend((m.msgtype, m.content, m.buffers) for m in before)
        return seen
    finally:
        await client.close()


async def test_a_server_sends_the_same_bytes_with_and_without_accelerators(server_factory: Any) -> None:
    fast = server_factory([APP])
    plain = server_factory([APP], ["--no-accelerate"])
    plain.wait_for_log("Accelerators off")
    assert await _first_session(fast) == await _first_session(plain)

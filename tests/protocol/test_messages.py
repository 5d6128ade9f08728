"""Tests of aperture.protocol.messages: the type table, the constructors and MessageIds."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aperture.protocol import (
    CLIENT_REQUESTS,
    KNOWN_TYPES,
    Buffer,
    Message,
    MessageIds,
    RawJSON,
    ack,
    error,
    ok,
    patch_doc,
    pull_doc_reply,
    server_info_reply,
)


def test_known_types_are_the_nine_of_the_spec() -> None:
    assert KNOWN_TYPES == {
        "ACK",
        "OK",
        "ERROR",
        "PULL-DOC-REQ",
        "PULL-DOC-REPLY",
        "PUSH-DOC",
        "PATCH-DOC",
        "SERVER-INFO-REQ",
        "SERVER-INFO-REPLY",
    }
    assert isinstance(KNOWN_TYPES, frozenset)


def test_client_requests() -> None:
    assert CLIENT_REQUESTS == {"PULL-DOC-REQ", "PUSH-DOC", "PATCH-DOC", "SERVER-INFO-REQ"}
    assert CLIENT_REQUESTS <= KNOWN_TYPES
    assert isinstance(CLIENT_REQUESTS, frozenset)


def test_buffer_is_frozen() -> None:
    buffer = Buffer("p1", b"\x00")
    with pytest.raises(dataclasses.FrozenInstanceError):
        buffer.id = "p2"  # type: ignore[misc]


def test_message_defaults() -> None:
    msg = Message("PULL-DOC-REQ", "m1", {})
    assert msg.reqid is None
    assert tuple(msg.buffers) == ()
    assert msg.metadata is None


def test_raw_json_is_a_str() -> None:
    raw = RawJSON('{"events":[]}')
    assert isinstance(raw, str)
    assert json.loads(raw) == {"events": []}


def test_ack() -> None:
    assert ack("a1") == Message("ACK", "a1", {})


def test_ok() -> None:
    assert ok("a2", "r1") == Message("OK", "a2", {}, reqid="r1")


def test_error_never_carries_a_traceback() -> None:
    msg = error("a3", "r1", "ValueError('bad')")
    assert msg.msgtype == "ERROR"
    assert msg.reqid == "r1"
    assert msg.content == {"text": "ValueError('bad')", "traceback": None}


def test_pull_doc_reply_with_dict() -> None:
    doc = {"version": "3.9.2", "title": "t", "roots": []}
    buffers = [Buffer("p9", b"abc")]
    msg = pull_doc_reply("a4", "r2", doc, buffers)
    assert msg.msgtype == "PULL-DOC-REPLY"
    assert msg.reqid == "r2"
    assert msg.content == {"doc": doc}
    assert list(msg.buffers) == buffers


def test_pull_doc_reply_with_raw_json() -> None:
    msg = pull_doc_reply("a4", "r2", RawJSON('{"title":"t","roots":[]}'))
    assert isinstance(msg.content, RawJSON)
    assert msg.content == '{"doc":{"title":"t","roots":[]}}'
    assert json.loads(msg.content) == {"doc": {"title": "t", "roots": []}}


def test_patch_doc() -> None:
    content = {"events": [{"kind": "TitleChanged", "title": "x"}]}
    msg = patch_doc("a5", content)
    assert msg == Message("PATCH-DOC", "a5", content)
    raw = RawJSON('{"events":[]}')
    assert patch_doc("a6", raw, [Buffer("b", b"")]).content is raw


def test_server_info_reply() -> None:
    msg = server_info_reply("a7", "r3", "3.9.2", "0.1.0")
    assert msg.msgtype == "SERVER-INFO-REPLY"
    assert msg.reqid == "r3"
    assert msg.content == {"version_info": {"bokeh": "3.9.2", "server": "0.1.0"}}


def test_message_ids_count_up_with_a_prefix() -> None:
    ids = MessageIds("a")
    assert [ids(), ids(), ids()] == ["a1", "a2", "a3"]


def test_message_ids_differ_between_instances() -> None:
    sources = [MessageIds() for _ in range(100)]
    prefixes = {source.prefix for source in sources}
    assert len(prefixes) == 100
    assert all(prefix.isalpha() and prefix.islower() for prefix in prefixes)
    seen = {source() for source in sources for _ in range(20)}
    assert len(seen) == 100 * 20


def test_message_ids_are_short() -> None:
    ids = MessageIds()
    assert len(ids()) <= 8


def test_package_imports_only_the_standard_library_and_errors() -> None:
    code = (
        "import sys; before = set(sys.modules); import aperture.protocol; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    root = Path(__file__).resolve().parents[2]
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    ours = {name for name in loaded if name.split(".")[0] == "aperture"}
    assert ours <= {"aperture", "aperture.errors", "aperture.protocol"} | {
        f"aperture.protocol.{m}" for m in ("framing", "messages")
    }
    tops = {name.split(".")[0] for name in loaded} - {"aperture"}
    assert tops <= set(sys.stdlib_module_names) | {"_json"}
    assert not tops & {"asyncio", "socket", "tornado", "bokeh", "selectors"}

"""The Bokeh websocket protocol against a running server, over real sockets."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.support.wsclient import BokehClient, fetch_token, model_changed, model_id, ws_url

APPS = "tests/apps"


@pytest.fixture(scope="module")
def server(module_server_factory):
    return module_server_factory([f"{APPS}/demo.py", f"{APPS}/ticker.py"], ["--keep-alive", "200"])


async def open_session(server, app="demo", token=None):
    page = server.url(f"/{app}")
    token = token or fetch_token(page)
    client = await BokehClient.connect(ws_url(page), token)
    return client, token


async def test_ack_then_pull_doc_with_binary_buffer(server):
    client, _ = await open_session(server)
    reply = await client.pull()
    assert reply.msgtype == "PULL-DOC-REPLY"
    doc = reply.content["doc"]
    assert doc["title"] == "demo"
    assert reply.header["num_buffers"] == 1
    [payload] = reply.buffers.values()
    assert np.frombuffer(payload, dtype="float64").tolist() == [0.0, 1.0, 2.0]
    await client.close()


async def test_patch_runs_python_callback_and_replies_ok_after_its_patches(server):
    client, _ = await open_session(server)
    slider = model_id((await client.pull()).content, "slider")
    ok, before = await client.reply_to(await client.send("PATCH-DOC", model_changed(slider, "value", 4)))
    assert ok.msgtype == "OK"
    kinds = [m.content["events"][0]["kind"] for m in before]
    assert kinds == ["ModelChanged", "ColumnDataChanged"]  # the slider change itself is not echoed
    assert before[0].content["events"][0]["new"] == "value=4"
    [data] = before[1].buffers.values()
    assert np.frombuffer(data, dtype="float64").tolist() == [4.0, 4.0, 4.0]
    await client.close()


async def test_second_connection_gets_changes_including_the_original_one(server):
    first, token = await open_session(server)
    second, _ = await open_session(server, token=token)
    slider = model_id((await first.pull()).content, "slider")
    await second.pull()
    await first.request("PATCH-DOC", model_changed(slider, "value", 6))
    seen = [await second.recv() for _ in range(3)]
    events = [m.content["events"][0] for m in seen]
    assert [e["kind"] for e in events] == ["ModelChanged", "ColumnDataChanged", "ModelChanged"]
    assert events[2]["attr"] == "value" and events[2]["new"] == 6
    await first.close()
    await second.close()


async def test_patch_with_binary_buffer_from_client(server):
    client, _ = await open_session(server)
    source = model_id((await client.pull()).content, "src")
    values = np.array([7.0, 8.0, 9.0])
    event = {
        "kind": "ColumnDataChanged",
        "model": {"id": source},
        "attr": "data",
        "data": {
            "type": "map",
            "entries": [
                [
                    "x",
                    {
                        "type": "ndarray",
                        "array": {"type": "bytes", "data": {"id": "0"}},
                        "shape": [3],
                        "dtype": "float64",
                        "order": "little",
                    },
                ]
            ],
        },
        "cols": None,
    }
    reply = await client.request("PATCH-DOC", {"events": [event]}, buffers={"0": values.tobytes()})
    assert reply.msgtype == "OK"
    pulled = await client.pull()
    [payload] = pulled.buffers.values()
    assert np.frombuffer(payload, dtype="float64").tolist() == [7.0, 8.0, 9.0]
    await client.close()


async def test_server_info(server):
    client, _ = await open_session(server)
    reply = await client.request("SERVER-INFO-REQ")
    assert reply.msgtype == "SERVER-INFO-REPLY"
    assert set(reply.content["version_info"]) == {"bokeh", "server"}
    await client.close()


async def test_push_doc_replaces_document_and_notifies_subscribers(server):
    first, token = await open_session(server)
    second, _ = await open_session(server, token=token)
    pulled = await first.pull()
    doc = pulled.content["doc"]
    doc["title"] = "pushed title"
    doc["roots"] = [r for r in doc["roots"] if r["attributes"].get("name") == "src"]
    ok, _ = await first.reply_to(await first.send("PUSH-DOC", {"doc": doc}, buffers=pulled.buffers))
    assert ok.msgtype == "OK", ok.content
    kinds = set()
    for _ in range(4):
        message = await second.recv()
        kinds.update(e["kind"] for e in message.content["events"])
        if "TitleChanged" in kinds:
            break
    assert "TitleChanged" in kinds
    assert (await second.pull()).content["doc"]["title"] == "pushed title"
    await first.close()
    await second.close()


async def test_periodic_and_timeout_callbacks_reach_the_client(server):
    client, _ = await open_session(server, app="ticker")
    await client.pull()
    texts = {}
    for _ in range(12):
        message = await client.recv()
        for event in message.content["events"]:
            texts.setdefault(event["model"]["id"], []).append(event["new"])
    assert any(v == "fired" for values in texts.values() for v in values)
    counts = [int(v) for values in texts.values() for v in values if v.isdigit()]
    assert counts == sorted(counts) and len(counts) >= 3
    await client.close()


async def test_keep_alive_pings_carry_a_counter(server):
    client, _ = await open_session(server)
    pings: list[bytes] = []
    original = client.conn.on_ping

    def record(data: bytes) -> None:
        pings.append(data)
        original(data)

    client.conn.on_ping = record  # type: ignore[method-assign]
    for _ in range(40):
        if len(pings) >= 2:
            break
        await asyncio.sleep(0.1)
    assert pings[:2] == [str(int(pings[0])).encode(), str(int(pings[0]) + 1).encode()]
    await client.close()


async def test_frames_sent_before_the_ack_wait_for_the_session(server):
    page = server.url("/demo")
    client = await BokehClient.connect(ws_url(page), fetch_token(page), wait_ack=False)
    msgid = await client.send("PULL-DOC-REQ")
    first = await client.recv()
    assert first.msgtype == "ACK"
    reply, _ = await client.reply_to(msgid)
    assert reply.msgtype == "PULL-DOC-REPLY"
    await client.close()


async def test_a_slow_callbacks_first_change_reaches_the_client_before_it_ends(server_factory):
    client, _ = await open_session(server_factory([f"{APPS}/progress.py"]), "progress")
    slider = model_id((await client.pull()).content, "slider")
    loop = asyncio.get_running_loop()
    sent = loop.time()
    msgid = await client.send("PATCH-DOC", model_changed(slider, "value", 3))
    first = await client.recv(timeout=5)
    first_after = loop.time() - sent
    ok, before = await client.reply_to(msgid, timeout=5)
    assert first.content["events"][0]["new"] == "working"
    assert first_after < 0.8  # not held back until the callback's end (1 s)
    assert [m.content["events"][0]["new"] for m in before] == ["done 3"] and ok.msgtype == "OK"
    await client.close()

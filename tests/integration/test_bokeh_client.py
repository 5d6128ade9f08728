"""`bokeh.client` and `bokeh.util.token` as real peers of Aperture."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from bokeh.client import pull_session, push_session
from bokeh.document import Document
from bokeh.models import Div
from bokeh.util import token as bokeh_token

APPS = "tests/apps"
SECRET = "kD3pZq8XvT1nRw5sYbLc9mHf2jGt6uAe0oQiNlWx4VyE"


@pytest.fixture(scope="module")
def server(module_server_factory):
    return module_server_factory([f"{APPS}/demo.py", f"{APPS}/context.py"])


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_pull_session_sees_the_document(server):
    with pull_session(url=server.url("/demo")) as session:
        doc = session.document
        assert doc.title == "demo"
        assert doc.get_model_by_name("div").text == "value=1"
        assert session.request_server_info()["version_info"]["bokeh"]


def test_client_change_runs_server_callback_seen_by_second_client(server):
    with pull_session(url=server.url("/demo")) as first:
        first.document.get_model_by_name("slider").value = 5
        first.force_roundtrip()
        with pull_session(url=server.url("/demo"), session_id=first.id) as second:
            assert second.document.get_model_by_name("div").text == "value=5"
            assert list(second.document.get_model_by_name("src").data["x"]) == [5.0, 5.0, 5.0]


def test_push_session_replaces_the_document(server):
    doc = Document()
    doc.add_root(Div(text="from a client", name="pushed"))
    doc.title = "pushed"
    with push_session(doc, url=server.url("/demo")) as pushed:
        with pull_session(url=server.url("/demo"), session_id=pushed.id) as check:
            assert check.document.title == "pushed"
            assert check.document.get_model_by_name("pushed").text == "from a client"


def test_request_arguments_reach_session_context(server):
    with pull_session(url=server.url("/context"), arguments={"foo": "bar"}) as session:
        info = json.loads(session.document.get_model_by_name("info").text)
        assert info["arguments"] == {"foo": ["bar"]}
        assert info["has_server_context"] and info["sessions_visible"]
        assert info["id"] == session.id


def test_page_request_context_stays_on_the_server(server):
    big_cookie = "x" * 6000
    request = urllib.request.Request(
        server.url("/context?foo=bar"),
        headers={
            "Cookie": f"c1=v1; c2=v2; big={big_cookie}",
            "X-Custom": "hello",
            "Authorization": "Bearer s3cret",
        },
    )
    html = urllib.request.urlopen(request, timeout=20).read().decode()
    token = re.search(r'"token":"([^"]+)"', html).group(1)  # type: ignore[union-attr]
    payload = bokeh_token.get_token_payload(token)
    assert "cookies" not in payload and "headers" not in payload  # nothing for page scripts to read
    assert "s3cret" not in json.dumps(payload, default=str) and "v1" not in json.dumps(payload, default=str)
    assert payload["arguments"]["foo"] == [b"bar"]
    assert len(token) < 1000  # fits proxies' default header buffers whatever the cookies
    session_id = bokeh_token.get_session_id(token)
    with pull_session(url=server.url("/context"), session_id=session_id) as session:
        info = json.loads(session.document.get_model_by_name("info").text)
        assert info["cookies"]["c1"] == "v1" and info["cookies"]["big"] == big_cookie
        assert info["headers"]["X-Custom"] == "hello"
        assert info["arguments"] == {"foo": ["bar"]}
        assert {"cookies", "headers", "arguments"} <= set(info["payload_keys"])


def test_curdoc_is_right_in_sync_and_async_callbacks(server):
    with pull_session(url=server.url("/context")) as session:
        button = session.document.get_model_by_name("go")
        from bokeh.events import ButtonClick

        session.document.callbacks.send_event(ButtonClick(button))
        session.force_roundtrip()

        def async_done():
            with pull_session(url=server.url("/context"), session_id=session.id) as again:
                return again.document.get_model_by_name("result").text == "async-ok"

        assert wait_for(async_done)


@pytest.fixture(scope="module")
def signed_server(module_server_factory):
    env = {"BOKEH_SECRET_KEY": SECRET, "BOKEH_SIGN_SESSIONS": "yes"}
    return module_server_factory([f"{APPS}/demo.py"], env=env)


def test_signed_ids_from_bokeh_are_accepted(signed_server):
    session_id = bokeh_token.generate_session_id(secret_key=SECRET.encode(), signed=True)
    html = urllib.request.urlopen(
        signed_server.url(f"/demo?bokeh-session-id={session_id}"), timeout=20
    ).read()
    token = re.search(rb'"token":"([^"]+)"', html).group(1).decode()  # type: ignore[union-attr]
    assert bokeh_token.check_token_signature(token, secret_key=SECRET.encode(), signed=True)
    assert bokeh_token.get_session_id(token) == session_id


def test_server_made_ids_verify_with_bokeh(signed_server):
    html = urllib.request.urlopen(signed_server.url("/demo"), timeout=20).read().decode()
    token = re.search(r'"token":"([^"]+)"', html).group(1)  # type: ignore[union-attr]
    session_id = bokeh_token.get_session_id(token)
    assert bokeh_token.check_session_id_signature(session_id, secret_key=SECRET.encode(), signed=True)


def test_unsigned_id_is_refused_on_a_signed_server(signed_server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(signed_server.url("/demo?bokeh-session-id=plain"), timeout=20)
    refused.value.close()
    assert refused.value.code == 403


def test_bokeh_client_with_signed_token(signed_server):
    # bokeh.client reads its signing settings at import time: run it in a fresh process.
    script = (
        "from bokeh.client import pull_session\n"
        "from bokeh.util.token import generate_session_id\n"
        f"with pull_session(url={signed_server.url('/demo')!r}, session_id=generate_session_id()) as s:\n"
        "    print(s.document.title)\n"
    )
    env = {**os.environ, "BOKEH_SECRET_KEY": SECRET, "BOKEH_SIGN_SESSIONS": "yes"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "demo", done.stderr

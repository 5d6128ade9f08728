"""With a session store, open pages keep their state through instance loss, restarts and rolling restarts.

Aperture instances share a real Redis (``--session-store``, flushed every 100 ms), three of them
behind ``load-balancer.conf`` (nginx ``least_conn``, no stickiness). Headless Chromium opens pages
of ``apps/store/state.py`` and gives each its own state through the page's widgets: a slider moved
with the keyboard, an option chosen, text typed, and buttons whose Python callbacks ``stream`` and
``patch`` the data source and add a ``Div`` to a column. Then an instance is killed (SIGKILL) or
stopped (SIGTERM) and started again on its port. Each page must reconnect by itself (no reload:
a ``window.__marker`` set before survives, no navigation happened), show exactly the state it had
(read from ``Bokeh.documents[0]``), and work again with its Python callbacks now running on the
process that took the session over (the app answers a ping with ``os.getpid()``); further changes
build on the restored state, which proves the Python side holds it too. The time from the fault
until a page shows its state and a ping has come back is each page's recovery time; the tests
print them. ``apps/store/panel_bind.py`` does the same for a Panel app (``pn.bind``).

The rolling restart waits, between steps, until nginx sends traffic to the restarted instance
again: after a refused connection ``load-balancer.conf`` skips an upstream for ``fail_timeout``
(10 s), and stopping the last instance within that time leaves nginx no live upstream. The last
test reproduces a race of a graceful stop with a takeover that waited on a relay.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.deploy.harness import RELAY_KEY, RELAY_KEY_ENV, Deployment, http_get, in_thread
from tests.deploy.store_harness import (
    MARKER,
    STATE_APP,
    STATE_PATH,
    STORE_APPS,
    StoreCluster,
    StorePage,
    await_recovery,
    status_pid,
    summary_figures,
    visible_state,
    wait_stored,
)
from tests.support.redis import RedisServer

COLOURS = ("green", "blue")


@pytest.fixture
def redis_server(tmp_path: Any) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    proc = server.proc
    try:
        yield server
    finally:
        server.stop()
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()  # RedisServer leaves its stderr pipe open


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Callable[[str], StorePage]]:
    """Pages of the module's Chromium, closed before the servers stop (their websockets end first)."""
    pages: list[StorePage] = []

    def make(name: str) -> StorePage:
        pages.append(StorePage(chromium, name))
        return pages[-1]

    yield make
    for page in pages:
        page.close()


def all_logs(deployment: Deployment) -> str:
    """The output of every Aperture process the test started, stopped ones included."""
    return "\n".join(server.logs() for server in deployment.servers)


def report(capsys: Any, line: str) -> None:
    with capsys.disabled():
        print(f"\n{line}")


# -- giving each page its own state --------------------------------------------------------------


def give_state(page: StorePage, k: int) -> dict[str, Any]:
    """Drive the page's widgets; return what it shows once Python has answered every action."""
    page.slide_right(k + 1)
    page.wait_for("summary", "model.text.startsWith(arg + '|')", str(11 + k))
    page.choose(COLOURS[k % 2])
    page.wait_for("status", "model.text.startsWith(arg)", f"select={COLOURS[k % 2]} ")
    page.type_text(f"page {k}")
    page.wait_for("status", "model.text.startsWith(arg)", f"text=page {k} ")
    for n in range(3, 3 + k + 1):
        page.click("stream")
        page.wait_for("status", "model.text.startsWith(arg)", f"stream {n} ")
    page.click("patch")
    page.wait_for("status", "model.text.startsWith(arg)", "patch 105 ")
    for n in range(1, 1 + (k % 2) + 1):
        page.click("add")
        page.wait_for("status", "model.text.startsWith(arg)", f"add {n} ")
    state = page.state()
    assert state is not None
    streamed = list(range(3, 3 + k + 1))
    assert state["x"] == [0, 1, 2, *streamed]
    assert state["y"] == [105, 6, 7, *(n * 10 for n in streamed)]
    assert state["extras"][0] == "extras:" and len(state["extras"]) == 1 + (k % 2) + 1
    assert state["summary"] == f"{11 + k}|{COLOURS[k % 2]}|page {k}|{3 + k + 1}"
    assert state["marker"] == MARKER
    return visible_state(state)  # type: ignore[return-value]


def open_pages(
    cluster: StoreCluster, new_page: Callable[[str], StorePage], redis: RedisServer, count: int
) -> tuple[list[StorePage], dict[str, dict[str, Any]]]:
    """``count`` pages, each with its own state, all of it in the store; and what each shows."""
    pages = []
    client = redis.client()
    for k in range(count):
        page = new_page(f"page{k}")
        page.open(cluster.url(STATE_PATH))
        pages.append(page)
    expected = {}
    for k, page in enumerate(pages):
        expected[page.name] = give_state(page, k)
        shown = {page.model_id(name): {"text": expected[page.name][name]} for name in ("status", "summary")}
        wait_stored(client, STATE_PATH, page.session_id(), shown)
    return pages, expected


def assert_not_reloaded(page: StorePage) -> None:
    assert len(page.navigations) == 1, f"{page.name} navigated again: {page.navigations}"
    assert page.page.evaluate("() => window.__marker") == MARKER


def interact_after(page: StorePage, owner: int) -> None:
    """Further interaction builds on the restored state, in the process that now owns the session."""
    before = page.state()
    assert before is not None
    slider, length, added = before["slider"], len(before["x"]), len(before["extras"])
    page.slide_right(1)
    page.wait_for("status", "model.text === arg", f"slider={slider + 1} pid={owner}")
    page.click("stream")
    page.wait_for("status", "model.text === arg", f"stream {length} pid={owner}")
    page.click("patch")
    page.wait_for("status", "model.text === arg", f"patch {before['y'][0] + 100} pid={owner}")
    page.click("add")
    page.wait_for("status", "model.text === arg", f"add {added} pid={owner}")
    after = page.state()
    assert after is not None
    assert after["x"] == [*before["x"], length]
    assert after["y"] == [before["y"][0] + 100, *before["y"][1:], length * 10]
    assert after["extras"] == [*before["extras"], f"added {added} by pid={owner}"]
    assert after["summary"] == f"{slider + 1}|{before['select']}|{before['text']}|{length + 1}"


# -- 1. failover ---------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.timeout(90)
def test_pages_keep_their_state_when_their_instance_is_killed(
    redis_server: RedisServer, deployment: Deployment, new_page: Callable[[str], StorePage], capsys: Any
) -> None:
    cluster = StoreCluster(deployment, redis_server.url)
    pages, expected = open_pages(cluster, new_page, redis_server, 4)
    owners = {page.name: page.ping() for page in pages}
    victim = collections.Counter(owners.values()).most_common(1)[0][0]
    orphans = [page for page in pages if owners[page.name] == victim]
    survivors = cluster.live_pids() - {victim}

    killed_at = cluster.by_pid(victim).kill()
    recovered = await_recovery(pages, expected, killed_at, accept=lambda pid: pid in survivors)

    for page in pages:
        assert_not_reloaded(page)
        state = page.state()
        assert state is not None
        if page in orphans:
            owner = recovered[page.name].pid
            assert owner in survivors
            assert state["built"] == f"built pid={owner}"  # rebuilt there, then restored
            assert status_pid(state) == victim  # the status the dead owner's callback wrote
        else:
            assert recovered[page.name].pid == owners[page.name]
        interact_after(page, recovered[page.name].pid)
    assert http_get(cluster.url(STATE_PATH)).status == 200
    logs = all_logs(deployment)
    assert logs.count("Restored app /state") >= len(orphans), logs
    assert not re.search(r"fresh document|Traceback", logs), logs
    times = [recovered[page.name].seconds for page in orphans]
    report(
        capsys,
        f"[store failover] SIGKILL of the owner of {len(orphans)} of {len(pages)} page(s): "
        f"state back and a callback round-tripped after {summary_figures(times)}; "
        + ", ".join(f"{t:.2f} s" for t in times),
    )


# -- 2. restart of a single instance ------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.timeout(90)
def test_pages_keep_their_state_through_a_restart(
    redis_server: RedisServer, deployment: Deployment, new_page: Callable[[str], StorePage], capsys: Any
) -> None:
    cluster = StoreCluster(deployment, redis_server.url, count=1, balanced=False)
    pages, expected = open_pages(cluster, new_page, redis_server, 2)
    instance = cluster.instances[0]
    old = instance.pid
    assert all(page.ping() == old for page in pages)

    stopped_at = instance.terminate()
    new = instance.start().pid
    recovered = await_recovery(pages, expected, stopped_at, accept=lambda pid: pid == new)
    for page in pages:
        assert_not_reloaded(page)
        state = page.state()
        assert state is not None and state["built"] == f"built pid={new}"
        interact_after(page, new)
    logs = instance.logs()
    assert logs.count("Restored app /state") >= len(pages), logs
    assert not re.search(r"fresh document|Traceback", all_logs(deployment)), all_logs(deployment)
    times = [r.seconds for r in recovered.values()]
    report(
        capsys,
        f"[store restart] SIGTERM, start again on the same port: {summary_figures(times)}; "
        + ", ".join(f"{t:.2f} s" for t in times),
    )


# -- 3. rolling restart --------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_pages_keep_their_state_through_a_rolling_restart(
    redis_server: RedisServer, deployment: Deployment, new_page: Callable[[str], StorePage], capsys: Any
) -> None:
    cluster = StoreCluster(deployment, redis_server.url)
    pages, expected = open_pages(cluster, new_page, redis_server, 3)
    worst: list[float] = []
    moved = 0
    for step, instance in enumerate(cluster.instances):
        owners = {page.name: page.ping() for page in pages}
        old = instance.pid
        failure: list[BaseException] = []

        def restart(instance: Any = instance, failure: list[BaseException] = failure) -> None:
            try:
                instance.terminate()
                instance.start()
            except BaseException as exc:  # re-raised in the test's thread
                failure.append(exc)

        stopped_at = time.monotonic()
        restarting = threading.Thread(target=restart)
        restarting.start()
        recovered = await_recovery(pages, expected, stopped_at, accept=lambda pid, old=old: pid != old)
        restarting.join(timeout=60)
        assert not restarting.is_alive() and not failure, failure
        assert http_get(f"http://127.0.0.1:{instance.port}/healthz").status == 200
        live = cluster.live_pids()
        for page in pages:
            assert_not_reloaded(page)
            owner = recovered[page.name].pid
            assert owner in live
            if owners[page.name] == old:
                moved += 1
                assert owner != old
            interact_after(page, owner)
            expected[page.name] = visible_state(page.state())  # type: ignore[assignment]
        worst.append(max(r.seconds for r in recovered.values()))
        report(
            capsys,
            f"[store rolling restart] step {step + 1}: "
            + ", ".join(f"{name} {r.seconds:.2f} s" for name, r in sorted(recovered.items())),
        )
        if step < len(cluster.instances) - 1:  # as an operator would: the balancer uses it again
            cluster.wait_until_balanced_to(instance)
    assert moved >= 1, "no page's session lived on a restarted instance"
    assert not re.search(r"fresh document|Traceback", all_logs(deployment)), all_logs(deployment)
    report(capsys, f"[store rolling restart] worst per-page interruption per step: {summary_figures(worst)}")


# -- 4. Panel ------------------------------------------------------------------------------------

PANEL_APP = STORE_APPS / "panel_bind.py"
PANEL_PATH = "/panel_bind"
PANEL_WIDGETS = {"count": "count-slider", "word": "word-input", "colour": "colour-select"}
# The ids and values of the Panel widgets' BokehJS models (found by css class), and whether the
# document is another one than when the page was marked (BokehJS swaps in the document it pulls
# after a reconnect).
PANEL_STATE_JS = """
(widgets) => {
  const models = Array.from(Bokeh.documents[0].all_models);
  const state = {};
  for (const [name, css] of Object.entries(widgets)) {
    const model = models.find((m) => Array.isArray(m.css_classes) && m.css_classes.includes(css));
    if (model == null) return null;
    state[name] = {id: model.id, value: model.value};
  }
  state.replaced = !models.includes(window.__panel_model);
  return state;
}
"""
MARK_PANEL_JS = """
(marker) => {
  window.__marker = marker;
  window.__panel_model = Bokeh.documents[0].roots()[0];
}
"""


def panel_state(page: StorePage) -> dict[str, Any] | None:
    return page.page.evaluate(PANEL_STATE_JS, PANEL_WIDGETS)  # type: ignore[no-any-return]


def panel_output(page: StorePage) -> str:
    """The text the bound Markdown pane shows (inside its shadow root)."""
    return page.page.locator(".output").first.evaluate(  # type: ignore[no-any-return]
        """(el) => Array.from((el.shadowRoot ?? el).children)
            .filter((child) => !["STYLE", "LINK", "SCRIPT"].includes(child.tagName))
            .map((child) => child.innerText).join("\\n").trim()"""
    )


def wait_output(page: StorePage, pattern: str, timeout: float = 15.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        shown = panel_output(page)
        match = re.fullmatch(pattern, shown)
        if match:
            return match
        assert time.monotonic() < deadline, f"the output shows {shown!r}, not {pattern!r}"
        time.sleep(0.05)


def type_word(page: StorePage, word: str) -> None:
    page.front()
    box = page.page.locator(".word-input input")
    box.fill(word)
    box.press("Enter")


@pytest.mark.browser
@pytest.mark.timeout(90)
def test_panel_widget_values_survive_the_loss_of_their_instance(
    redis_server: RedisServer, deployment: Deployment, new_page: Callable[[str], StorePage], capsys: Any
) -> None:
    """Widget values of a ``pn.bind`` app survive its owner's SIGKILL, and Python knows them there:
    changing one widget afterwards recomputes the output from the restored values of the others."""
    cluster = StoreCluster(deployment, redis_server.url, apps=(PANEL_APP,))
    for instance in cluster.instances:  # import Panel in every process before the clock runs
        assert http_get(f"http://127.0.0.1:{instance.port}{PANEL_PATH}", timeout=60).status == 200
    page = new_page("panel")
    page.bokeh.open(cluster.url(PANEL_PATH), timeout_ms=60_000)
    wait_output(page, r"abab in red \(count=2, pid=\d+\)")

    page.front()
    handle = page.page.locator(".count-slider .noUi-handle")
    handle.focus()
    for _ in range(2):
        handle.press("ArrowRight")
    page.page.locator(".colour-select select").select_option("blue")
    type_word(page, "xy")
    owner = int(wait_output(page, r"xyxyxyxy in blue \(count=4, pid=(\d+)\)").group(1))
    page.page.evaluate(MARK_PANEL_JS, MARKER)
    before = panel_state(page)
    assert before is not None
    wait_stored(
        redis_server.client(),
        PANEL_PATH,
        page.session_id(),
        {before[name]["id"]: {"value": before[name]["value"]} for name in PANEL_WIDGETS},
    )

    killed_at = cluster.by_pid(owner).kill()
    deadline = time.monotonic() + 30
    while not (state := panel_state(page)) or not state["replaced"]:
        assert time.monotonic() < deadline, f"the page never got a document again: {state}"
        time.sleep(0.02)
    restored = time.monotonic() - killed_at
    assert state == {**before, "replaced": True}
    assert {name: state[name]["value"] for name in PANEL_WIDGETS} == {
        "count": 4,
        "word": "xy",
        "colour": "blue",
    }
    wait_output(page, r"xyxyxyxy in blue \(count=4, pid=\d+\)")

    type_word(page, "q")  # count and colour as restored: Python must know them on the survivor
    survivor = int(wait_output(page, r"qqqq in blue \(count=4, pid=(\d+)\)").group(1))
    recovered = time.monotonic() - killed_at
    assert survivor != owner and survivor in cluster.live_pids()
    logs = cluster.by_pid(survivor).logs()
    assert f"panel_bind: describe count=4 word='q' colour=blue pid={survivor}" in logs
    assert "Restored app /panel_bind" in logs and "fresh document" not in logs, logs
    assert len(page.navigations) == 1 and page.page.evaluate("() => window.__marker") == MARKER
    report(
        capsys,
        f"[store failover, Panel] SIGKILL of the owner: widget values back after {restored:.2f} s, "
        f"the bound output recomputed on the survivor from them after {recovered:.2f} s",
    )


# -- a takeover that waited on a relay -----------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_session_released_during_a_relay_attempt_is_restored(
    redis_server: RedisServer, deployment: Deployment
) -> None:
    """A websocket reaches S while the session's owner X is alive, so S relays it to X. The relay
    hangs (X's advertised address accepts connections but never answers, as a host being torn
    down may) and meanwhile X stops gracefully and releases the session. When the relay times out,
    S must take the released session over with its state, not build a fresh one."""
    from bokeh.client import pull_session
    from bokeh.util.token import generate_session_id

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    hole.settimeout(15)
    env = {RELAY_KEY_ENV: RELAY_KEY}
    store = [
        "--allow-websocket-origin=*",
        "--session-store",
        redis_server.url,
        "--session-store-flush",
        "100",
    ]
    advertise_hole = ["--advertise-address", f"127.0.0.1:{hole.getsockname()[1]}"]
    owner = deployment.aperture([*store, *advertise_hole], apps=[STATE_APP], env=env)
    survivor = deployment.aperture(
        [*store, "--advertise-address", "127.0.0.1:{port}"], apps=[STATE_APP], env=env
    )
    session_id = generate_session_id()

    def stop_owner_once_relaying() -> None:
        accepted, _ = hole.accept()  # the survivor is relaying to the owner's address
        with accepted:
            owner.stop()  # SIGTERM: flush, close websockets, release the session

    def clients() -> Any:  # bokeh.client runs its own event loop: not in Playwright's thread
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            with pull_session(session_id=session_id, url=owner.url(STATE_PATH)) as first:
                slider = first.document.get_model_by_name("slider")
                slider.value = 77
                first.force_roundtrip()
                wait_stored(redis_server.client(), STATE_PATH, session_id, {slider.id: {"value": 77}})
            stopper = threading.Thread(target=stop_owner_once_relaying)
            stopper.start()
            with pull_session(session_id=session_id, url=survivor.url(STATE_PATH)) as second:
                value = second.document.get_model_by_name("slider").value
            stopper.join(timeout=20)
            if stopper.is_alive():
                pytest.fail("the owner did not stop")
            return value
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            value = pool.submit(clients).result(timeout=40)
    finally:
        hole.close()
    # What the scenario needs (pytest.fail: a broken set-up is not the failure under test).
    if "Released 1 session(s)" not in owner.logs():
        pytest.fail(f"the owner did not release the session:\n{owner.logs()}")
    if "is unreachable" not in survivor.logs():
        pytest.fail(f"the survivor did not try to relay to the owner:\n{survivor.logs()}")
    assert value == 77, f"the survivor built the session afresh:\n{survivor.logs()}"


# -- a relay whose owner goes away ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_relay_logs_no_traceback_when_the_owner_stops_under_traffic(
    redis_server: RedisServer, deployment: Deployment
) -> None:
    """A websocket relayed from S to the session's owner X keeps sending while X stops gracefully:
    S closes the client's websocket (1001) so that it reconnects, without an uncaught exception."""
    from tests.support.wsclient import BokehClient, fetch_token, ws_url

    env = {RELAY_KEY_ENV: RELAY_KEY}
    store = ["--allow-websocket-origin=*", "--session-store", redis_server.url, "--advertise-address"]
    owner = deployment.aperture([*store, "127.0.0.1:{port}"], apps=[STATE_APP], env=env)
    relay = deployment.aperture([*store, "127.0.0.1:{port}"], apps=[STATE_APP], env=env)
    token = fetch_token(owner.url(STATE_PATH))  # the page's session lives on the owner

    async def traffic() -> int:
        client = await BokehClient.connect(ws_url(relay.url(STATE_PATH)), token)
        stopping = asyncio.get_running_loop().run_in_executor(None, owner.stop)
        sent = 0
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                await client.send("PULL-DOC-REQ")
                sent += 1
                await asyncio.sleep(0.001)
        except Exception:  # the relay closed the client's websocket: the owner is gone
            pass
        finally:
            client.conn.close()
        await stopping
        return sent

    sent = in_thread(traffic())
    if "relayed to its owner" not in relay.logs() or sent == 0:
        pytest.fail(f"the websocket was not relayed:\n{relay.logs()}")
    assert "Uncaught exception" not in relay.logs(), relay.logs()

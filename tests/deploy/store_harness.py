"""Aperture instances with a session store, and pages whose state is read and pinged through BokehJS.

``StoreCluster`` runs Aperture instances that share one Redis (``--session-store``, flushing every
100 ms, each advertising ``127.0.0.1:<its port>``), optionally behind ``nginx/load-balancer.conf``
(``least_conn``, no stickiness); each instance can be killed (SIGKILL), stopped (SIGTERM) and
started again on the same port with the same flags.

``StorePage`` wraps a ``BokehPage`` of ``apps/store/state.py``: ``state()`` reads everything the
page shows through ``Bokeh.documents[0]`` in one call, ``send_ping`` sets the ``ping`` input from
the page (its Python callback answers in ``pong`` with its pid), and the page records every
navigation of its main frame, so a test can tell that no reload happened.

``await_recovery`` polls a set of pages round-robin after a fault and returns, per page, the time
from the fault until a fresh ping has come back from a process the test accepts and the page
shows the expected state in the document that process sent: the recovery time of that page.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aperture.store.redis_store import session_key
from tests.deploy.harness import RELAY_KEY, RELAY_KEY_ENV, Deployment, ProxyProcess, allow_origin, http_get
from tests.support.browser import BokehPage
from tests.support.servers import REPO_ROOT, ServerProcess, free_port

STORE_APPS = REPO_ROOT / "tests" / "deploy" / "apps" / "store"
STATE_APP = STORE_APPS / "state.py"
STATE_PATH = "/state"
FLUSH_MS = 100
MARKER = "set-before-the-fault"
TOKEN_RE = re.compile(r'"token"\s*:\s*"([A-Za-z0-9_\-.]+)"')


# -- instances ---------------------------------------------------------------------------------


@dataclass
class Instance:
    """One Aperture instance of a cluster: the same app, flags and port across restarts."""

    deployment: Deployment
    apps: list[Path]
    args: list[str]
    env: dict[str, str]
    port: int
    server: ServerProcess | None = None

    def start(self) -> Instance:
        self.server = self.deployment.aperture(self.args, apps=self.apps, env=self.env, port=self.port)
        return self

    @property
    def pid(self) -> int:
        assert self.server is not None, "the instance is not running"
        return self.server.pid

    def kill(self) -> float:
        """SIGKILL; returns the monotonic time of the signal."""
        assert self.server is not None
        at = time.monotonic()
        os.kill(self.server.pid, signal.SIGKILL)
        self.server.stop()  # reaps it
        self.server = None
        return at

    def terminate(self) -> float:
        """SIGTERM and wait until the process has exited (a graceful stop); returns when it was sent."""
        assert self.server is not None
        at = time.monotonic()
        returncode = self.server.stop()
        assert returncode == 0, f"aperture exited with {returncode} on SIGTERM:\n{self.server.logs()}"
        self.server = None
        return at

    def logs(self) -> str:
        return self.server.logs() if self.server is not None else ""


def store_args(redis_url: str, origin_port: int) -> list[str]:
    return [
        allow_origin(origin_port),
        "--session-store", redis_url,
        "--session-store-flush", str(FLUSH_MS),
        "--advertise-address", "127.0.0.1:{port}",
    ]  # fmt: skip


class StoreCluster:
    """``count`` instances sharing ``redis_url``; behind nginx ``least_conn`` unless ``balanced=False``."""

    def __init__(
        self,
        deployment: Deployment,
        redis_url: str,
        *,
        count: int = 3,
        apps: Sequence[Path] = (STATE_APP,),
        balanced: bool = True,
    ) -> None:
        self.deployment = deployment
        self.nginx: ProxyProcess | None = None
        front = free_port()
        env = {RELAY_KEY_ENV: RELAY_KEY}
        self.instances: list[Instance] = []
        for _ in range(count):
            port = free_port()
            args = store_args(redis_url, front if balanced else port)
            self.instances.append(Instance(deployment, list(apps), args, env, port).start())
        if balanced:
            assert count == 3, "load-balancer.conf names three backends"
            backends = {f"backend{i}": f"127.0.0.1:{inst.port}" for i, inst in enumerate(self.instances, 1)}
            self.nginx = deployment.nginx(
                "nginx/load-balancer.conf", [front], listen=f"127.0.0.1:{front}", **backends
            )
            self.base = f"http://127.0.0.1:{front}"
        else:
            self.base = f"http://127.0.0.1:{self.instances[0].port}"

    def url(self, path: str) -> str:
        return self.base + path

    def by_pid(self, pid: int) -> Instance:
        return next(inst for inst in self.instances if inst.server is not None and inst.pid == pid)

    def live_pids(self) -> set[int]:
        return {inst.pid for inst in self.instances if inst.server is not None}

    def logs(self) -> str:
        return "\n".join(inst.logs() for inst in self.instances)

    def wait_until_balanced_to(self, instance: Instance, timeout: float = 20.0) -> float:
        """Wait until nginx sends a request to ``instance`` again; returns how long that took.

        ``load-balancer.conf`` skips an upstream for ``fail_timeout`` (10 s) after a failed connect,
        so an instance that restarted within that time gets no traffic yet, although it is ready.
        """
        assert self.nginx is not None
        began = time.monotonic()
        upstream = f"upstream=127.0.0.1:{instance.port} "
        while True:
            seen = len(self.nginx.access_lines())
            assert http_get(self.url("/healthz")).status == 200
            if any(upstream in line for line in self.nginx.access_lines()[seen:]):
                return time.monotonic() - began
            assert time.monotonic() - began < timeout, f"nginx sent nothing to {instance.port} in {timeout} s"
            time.sleep(0.1)


# -- pages -------------------------------------------------------------------------------------

# Everything the state app shows, read from BokehJS's document in one call; null while the
# document is being replaced (after a reconnect BokehJS swaps in the pulled document).
STATE_JS = """
() => {
  try {
    const doc = Bokeh.documents[0];
    const get = (name) => {
      const model = doc.get_model_by_name(name);
      if (model == null) throw new Error(`no model ${name}`);
      return model;
    };
    const source = get("source");
    const column = (name) => Array.from(source.data instanceof Map ? source.data.get(name) : source.data[name]);
    return {
      marker: window.__marker ?? null,
      slider: get("slider").value,
      select: get("select").value,
      text: get("text").value,
      x: column("x"),
      y: column("y"),
      extras: get("extras").children.map((child) => child.text),
      summary: get("summary").text,
      status: get("status").text,
      built: get("built").text,
      pong: get("pong").text,
    };
  } catch (error) {
    return null;
  }
}
"""

# Set the ping input as a widget would; false if BokehJS could not take it (socket not open yet).
PING_JS = """
(value) => {
  try {
    Bokeh.documents[0].get_model_by_name("ping").value = value;
    return true;
  } catch (error) {
    return false;
  }
}
"""

# What a page must show again after a fault (the ping/pong pair and `built` are not part of it).
STATE_KEYS = ("marker", "slider", "select", "text", "x", "y", "extras", "summary", "status")


class StorePage:
    """A page of the state app, with its own name and the navigations of its main frame."""

    def __init__(self, context: Any, name: str) -> None:
        self.name = name
        self.bokeh = BokehPage(context.new_page())
        self.page = self.bokeh.page
        self.navigations: list[str] = []
        self.pings = 0
        self.page.on("framenavigated", self._navigated)

    def _navigated(self, frame: Any) -> None:
        if frame == self.page.main_frame:
            self.navigations.append(frame.url)

    def open(self, url: str) -> None:
        self.bokeh.open(url)
        self.page.evaluate(f"() => {{ window.__marker = {json.dumps(MARKER)}; }}")

    def state(self) -> dict[str, Any] | None:
        return self.page.evaluate(STATE_JS)  # type: ignore[no-any-return]

    def session_id(self) -> str:
        from bokeh.util.token import get_session_id

        match = TOKEN_RE.search(self.page.content())
        assert match, f"{self.name}: no session token in the page"
        return get_session_id(match.group(1))

    def model_id(self, name: str) -> str:
        return self.bokeh.model_value(name, "model.id")  # type: ignore[no-any-return]

    def send_ping(self) -> str | None:
        self.pings += 1
        value = f"{self.name}-ping-{self.pings}"
        return value if self.page.evaluate(PING_JS, value) else None

    def ping(self, accept: Callable[[int], bool] = lambda pid: True, timeout: float = 10.0) -> int:
        """A ping round trip; the pid of the process whose callback answered it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.send_ping()
            until = min(deadline, time.monotonic() + 1.0)
            while value is not None and time.monotonic() < until:
                state = self.state()
                pid = pong_pid(state, value)
                if pid is not None and accept(pid):
                    return pid
                time.sleep(0.05)
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no ping came back within {timeout} s; state {self.state()}")

    # -- the user's actions, through the page's widgets ------------------------------------------

    def front(self) -> None:
        """Make this the active tab: Chromium throttles animation frames, which Playwright's clicks
        wait for, in background tabs."""
        self.page.bring_to_front()

    def click(self, name: str) -> None:
        self.front()
        self.bokeh.view_element(name).wait_for_selector("button").click()

    def slide_right(self, steps: int) -> None:
        self.front()
        handle = self.bokeh.view_element("slider").wait_for_selector(".noUi-handle")
        handle.focus()
        for _ in range(steps):
            handle.press("ArrowRight")

    def choose(self, option: str) -> None:
        self.front()
        self.bokeh.view_element("select").wait_for_selector("select").select_option(option)

    def type_text(self, value: str) -> None:
        self.front()
        box = self.bokeh.view_element("text").wait_for_selector("input")
        box.fill(value)
        box.press("Enter")

    def wait_for(self, name: str, predicate: str, arg: Any = None, timeout_ms: int = 10_000) -> Any:
        return self.bokeh.wait_for_model(name, predicate, arg, timeout_ms=timeout_ms)

    def close(self) -> None:
        self.page.close()


def pong_pid(state: Mapping[str, Any] | None, value: str) -> int | None:
    """The pid in ``pong`` if it answers ``value``."""
    if not state:
        return None
    match = re.fullmatch(rf"{re.escape(value)} pid=(\d+)", state["pong"])
    return int(match.group(1)) if match else None


def pong_since(state: Mapping[str, Any] | None, name: str, first: int) -> int | None:
    """The pid in ``pong`` if it answers ping number ``first`` of page ``name``, or a later one."""
    if not state:
        return None
    match = re.fullmatch(rf"{re.escape(name)}-ping-(\d+) pid=(\d+)", state["pong"])
    return int(match.group(2)) if match and int(match.group(1)) >= first else None


def visible_state(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if state is None else {key: state[key] for key in STATE_KEYS}


def status_pid(state: Mapping[str, Any]) -> int:
    match = re.search(r"pid=(\d+)$", state["status"])
    assert match, f"no pid in status {state['status']!r}"
    return int(match.group(1))


# -- recovery ----------------------------------------------------------------------------------


@dataclass
class Recovery:
    seconds: float
    pid: int  # the process whose callback answered the first ping after the fault


def await_recovery(
    pages: Sequence[StorePage],
    expected: Mapping[str, dict[str, Any]],
    since: float,
    accept: Callable[[int], bool],
    timeout: float = 30.0,
    every: float = 0.1,
) -> dict[str, Recovery]:
    """Poll ``pages`` until each answered a ping sent after ``since`` from a process ``accept`` takes,
    and shows ``expected[page.name]`` in the document that process built (``built`` names it);
    the time from ``since`` to that moment, per page name.

    After a reconnect BokehJS pulls the document and swaps it in, but a patch sent meanwhile can
    be answered into the old one first: only ``built`` tells the documents apart. Each page is
    pinged again every ``every`` seconds (a ping sent while its websocket is down is lost); an
    answer to any of them counts, so the figures are not rounded up to a resend period.
    """
    first = {page.name: page.pings + 1 for page in pages}
    sent: dict[str, float] = {}
    done: dict[str, Recovery] = {}
    last: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(pages) and time.monotonic() < deadline:
        for page in pages:
            if page.name in done:
                continue
            if time.monotonic() - sent.get(page.name, -every) >= every:
                page.send_ping()
                sent[page.name] = time.monotonic()
            state = page.state()
            last[page.name] = state
            pid = pong_since(state, page.name, first[page.name])
            if (
                pid is not None
                and accept(pid)
                and state is not None
                and state["built"] == f"built pid={pid}"  # the document pulled from pid, not the old one
                and visible_state(state) == expected[page.name]
            ):
                done[page.name] = Recovery(time.monotonic() - since, pid)
        time.sleep(0.01)
    missing = [page.name for page in pages if page.name not in done]
    assert not missing, "pages did not recover within {:.0f} s: {}\n{}".format(
        timeout,
        missing,
        "\n".join(f"{name}: expected {expected[name]}\n  showing {last.get(name)}" for name in missing),
    )
    return done


def wait_stored(
    redis: Any, route: str, session_id: str, wanted: Mapping[str, Mapping[str, Any]], timeout: float = 5.0
) -> None:
    """Wait until the store holds ``wanted`` (model id -> property -> value) for the session: the
    owner's flush has run, so a fault now loses nothing."""
    key = session_key(route, session_id)
    deadline = time.monotonic() + timeout
    stored: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stored = {}
        for model_id, values in wanted.items():
            raw = redis.hget(key, f"m:{model_id}")
            attributes = json.loads(raw)["a"] if raw else {}
            stored[model_id] = {name: attributes.get(name) for name in values}
        if stored == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"session {session_id[:12]}: the store holds {stored}, not {dict(wanted)}")


def summary_figures(seconds: Sequence[float]) -> str:
    """``min … s, median … s, max … s (n=…)``."""
    return (
        f"min {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s, "
        f"max {max(seconds):.2f} s (n={len(seconds)})"
    )

"""Losing an instance behind nginx: open pages reconnect to a survivor and work again.

Three Aperture instances behind `load-balancer.conf`; three browser pages are open (and
have each round-tripped a click). One instance is killed with SIGKILL. BokehJS reconnects
with the page's token; nginx sends it to a surviving instance, which cannot reach the
dead owner of the session and rebuilds the session from the token. The test measures how
long each page takes to work again, and checks that new page views never fail meanwhile.
What survives: the session id and the request context; the document is rebuilt by the app
(widget values and data go back to what the app makes).
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.deploy.harness import APP_PATH, Deployment, http_get
from tests.support.browser import BokehPage

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def pid_of(page: BokehPage) -> int:
    text = page.model_value("info", "model.text")
    return int(re.search(r"pid=(\d+)", text).group(1))  # type: ignore[union-attr]


def click_until(page: BokehPage, expected: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            page.view_element("button").wait_for_selector("button", timeout=2000).click()
            page.wait_for_model("result", f"model.text.includes({expected!r})", timeout_ms=2000)
            return
        except Exception:
            time.sleep(0.2)
    raise AssertionError(f"the page did not work again within {timeout} s")


def test_pages_recover_when_an_instance_is_killed(deployment: Deployment, chromium, capsys) -> None:
    nginx, servers = deployment.nginx_balanced()
    url = f"http://127.0.0.1:{nginx.ports[0]}{APP_PATH}"
    pages = [BokehPage(chromium.new_page()) for _ in range(3)]
    for page in pages:
        page.open(url)
        page.wait_for_painted_canvas()
        click_until(page, "clicked 1", timeout=20)
    by_pid = {server.pid: server for server in servers}
    victim_pid = pid_of(pages[0])
    orphans = [page for page in pages if pid_of(page) == victim_pid]
    killed_at = time.monotonic()
    os.kill(victim_pid, signal.SIGKILL)
    by_pid[victim_pid].stop()

    for _ in range(5):  # new page views keep working while pages reconnect
        assert http_get(url).status == 200

    recovery = []
    for page in orphans:
        click_until(page, "pid=", timeout=40)
        recovery.append(time.monotonic() - killed_at)
        assert pid_of(page) != victim_pid
    for page in pages:
        if page not in orphans:
            click_until(page, "clicked", timeout=20)
        page.page.close()
    with capsys.disabled():
        print(
            f"\n[instance loss] {len(orphans)} page(s) recovered after "
            + ", ".join(f"{t:.2f} s" for t in recovery)
        )


def test_page_comes_back_after_a_server_restart(server_factory, chromium) -> None:
    from tests.deploy.harness import APP, allow_origin
    from tests.support.servers import free_port

    port = free_port()
    args = [allow_origin(port)]
    first = server_factory([str(APP)], args, port=port)
    page = BokehPage(chromium.new_page())
    page.open(f"http://127.0.0.1:{port}{APP_PATH}")
    page.wait_for_painted_canvas()
    click_until(page, "clicked 1", timeout=20)
    first.stop()  # SIGTERM: a graceful stop, websockets closed with 1001
    stopped_at = time.monotonic()
    second = server_factory([str(APP)], args, port=port)
    click_until(page, f"pid={second.pid}", timeout=40)
    page.page.close()
    print(f"\n[restart] the page worked again {time.monotonic() - stopped_at:.2f} s after the stop")

"""OpenID Connect sign-in across three Aperture instances behind nginx, with no stickiness.

Three instances share ``BOKEH_SECRET_KEY`` (and so the key of their sealed cookies) behind the
shipped ``nginx/load-balancer.conf``, which spreads requests between idle instances in turn.
Chromium opens the app through nginx, signs in at the real provider and comes back: the sign-in
starts (``/oidc/login``, which sets the flow cookie) on one instance and finishes
(``/oidc/callback``) on another — nginx's access log names the instance of each request, and
each instance's own access log agrees — and the page's websocket then works.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.harness import Deployment, allow_origin, free_port
from tests.identity.helpers import WHOAMI
from tests.support.browser import BokehPage
from tests.support.oidc import (
    PASSWORD,
    OidcProvider,
    aperture_args,
    aperture_env,
    keep_on_loopback,
    require_provider,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ATTEMPTS = 3  # sign-ins tried until one starts and finishes on different instances


def upstream_of(nginx: Any, path_pattern: str) -> list[str]:
    """The instance (``upstream=``) of each access-log line whose request matches ``path_pattern``."""
    regex = re.compile(r'"GET ' + path_pattern + r'[^"]*" \d+ .*upstream=(\S+)')
    return [match.group(1) for line in nginx.access_lines() if (match := regex.search(line))]


def test_sign_in_starts_on_one_instance_and_finishes_on_another(
    deployment: Deployment, bokeh_page: BokehPage, chromium: Any, serving_bokeh: bool
) -> None:
    if serving_bokeh:
        pytest.skip("bokeh serve has no built-in OpenID Connect sign-in")
    require_provider()
    provider = OidcProvider(deployment.path("provider")).start()
    try:
        port = free_port()
        args = aperture_args(provider, allow_origin(port))
        servers = [deployment.aperture(args, apps=[WHOAMI], env=aperture_env()) for _ in range(3)]
        backends = {f"backend{i}": f"127.0.0.1:{server.port}" for i, server in enumerate(servers, 1)}
        nginx = deployment.nginx("nginx/load-balancer.conf", [port], listen=f"127.0.0.1:{port}", **backends)
        base = f"http://127.0.0.1:{port}"
        provider.allow(base)
        blocked = keep_on_loopback(bokeh_page.page)
        page = bokeh_page.page

        crossed: tuple[str, str] | None = None
        for attempt in range(ATTEMPTS):
            chromium.clear_cookies()
            seen_login = len(upstream_of(nginx, "/oidc/login"))
            seen_callback = len(upstream_of(nginx, "/oidc/callback"))
            page.goto(f"{base}/whoami", wait_until="load")
            page.wait_for_selector("input[name=login]")
            assert page.url.startswith(provider.issuer), page.url
            page.fill("input[name=login]", "alice")
            page.fill("input[name=password]", PASSWORD)
            with page.expect_navigation():
                page.click("button[type=submit]")
            page.wait_for_url(f"{base}/whoami")
            bokeh_page.wait_for_bokeh()
            assert bokeh_page.view_text("user") == "user=alice"
            bokeh_page.set_model("slider", "value", 5 + attempt)
            bokeh_page.wait_for_model("echo", "model.text === arg", f"value={5 + attempt}")

            logins = upstream_of(nginx, "/oidc/login")[seen_login:]
            callbacks = upstream_of(nginx, "/oidc/callback")[seen_callback:]
            assert len(logins) == 1 and len(callbacks) == 1, nginx.diagnostics()
            started, finished = logins[0], callbacks[0]
            if started != finished:
                crossed = (started, finished)
                break
        assert crossed is not None, (
            f"every sign-in started and finished on one instance:\n{nginx.diagnostics()}"
        )

        # Each instance's own access log agrees with nginx about who served what.
        by_address = {f"127.0.0.1:{server.port}": server for server in servers}
        started, finished = crossed
        assert re.search(r'"GET /oidc/login\?', by_address[started].logs()), by_address[started].logs()
        assert re.search(r'"GET /oidc/callback\?', by_address[finished].logs()), by_address[finished].logs()
        assert "OpenID Connect sign-in refused" not in "".join(s.logs() for s in servers)
        bokeh_page.assert_no_errors()
        assert not blocked, f"the browser tried to leave loopback: {blocked}"
    finally:
        provider.stop()

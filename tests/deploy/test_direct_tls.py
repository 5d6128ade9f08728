"""Aperture terminating TLS itself (``--ssl-certfile``/``--ssl-keyfile``, ``BOKEH_SSL_PASSWORD``).

No proxy: the browser talks https and wss straight to Aperture, with a self-signed
certificate made by ``openssl`` whose key is encrypted with the password.
"""

from __future__ import annotations

import pytest

from tests.deploy.harness import APP_PATH, Deployment, http_get, round_trip, self_signed_certificate
from tests.support.browser import BokehPage

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def test_https_and_wss_served_directly(deployment: Deployment, bokeh_page: BokehPage) -> None:
    cert, key = self_signed_certificate(deployment.workdir, password="correct horse")
    server = deployment.aperture(
        ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--allow-websocket-origin=127.0.0.1:{port}"],
        env={"BOKEH_SSL_PASSWORD": "correct horse"},
    )
    assert f"Bokeh app running at: https://127.0.0.1:{server.port}{APP_PATH}" in server.logs()
    url = f"https://127.0.0.1:{server.port}{APP_PATH}"
    round_trip(bokeh_page, url)
    assert bokeh_page.model_value("info", "model.text").startswith("protocol=https remote_ip=127.0.0.1 ")
    assert http_get(f"https://127.0.0.1:{server.port}/healthz").status == 200

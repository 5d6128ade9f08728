"""A real Prometheus server (Debian package `prometheus`) scrapes Aperture's `/metrics` on loopback,
and the Grafana dashboard in deploy/grafana queries only metrics a real scrape has, in PromQL that
this Prometheus accepts."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.harness import require_tool
from tests.operations.scrape import fetch, parse, value
from tests.support.processes import stop_group_leader
from tests.support.servers import REPO_ROOT, free_port
from tests.support.wsclient import fetch_token

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "aperture-dashboard.json"
SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: aperture
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


class Prometheus:
    """One `prometheus` process on a free loopback port, with its data in a temporary directory."""

    def __init__(self, binary: str, workdir: Path, target_port: int) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(SCRAPE_CONFIG.format(port=target_port))
        self.log = open(workdir / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.api("/api/v1/query", query=expr)
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "prometheus exited early"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    def stop(self) -> None:
        stop_group_leader(self.proc, 10.0, running=self.proc.poll() is None)  # type: ignore[arg-type]
        self.log.close()


@pytest.fixture(scope="module")
def aperture(module_server_factory):
    return module_server_factory(["tests/apps/demo.py"], ["--metrics"])


@pytest.fixture(scope="module")
def prometheus(aperture, tmp_path_factory) -> Iterator[Prometheus]:
    binary = require_tool("prometheus", "the Debian package prometheus")
    server = Prometheus(binary, tmp_path_factory.mktemp("prometheus"), aperture.port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def wait_for_value(prometheus: Prometheus, expr: str, expected: float, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = prometheus.query(expr)
        if result and float(result[0]["value"][1]) == expected:
            return
        time.sleep(0.3)
    raise AssertionError(f"{expr} never became {expected}; last answer: {result}")


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_prometheus_scrapes_the_session_counts(aperture, prometheus):
    before = value(parse(fetch(aperture.url("/metrics"))[2]), "aperture_sessions_created_total", app="/demo")
    for _ in range(3):
        fetch_token(aperture.url("/demo"))
    wait_for_value(prometheus, 'aperture_sessions_created_total{app="/demo"}', before + 3)
    wait_for_value(prometheus, 'up{job="aperture"}', 1.0)
    wait_for_value(prometheus, 'aperture_sessions{app="/demo",state="live"}', before + 3)
    [target] = prometheus.api("/api/v1/targets")["data"]["activeTargets"]
    assert target["health"] == "up" and not target["lastError"]


def test_the_grafana_dashboard_uses_real_metrics_in_valid_queries(aperture, prometheus):
    fetch_token(aperture.url("/demo"))
    samples = parse(fetch(aperture.url("/metrics"))[2])
    scraped = {name for name, _ in samples}
    exprs = dashboard_exprs()
    assert len(exprs) >= 14
    for expr in exprs:
        for name in re.findall(r"\b(?:aperture|process)_[a-z_]+\b", expr):
            assert name in scraped, f"{name} (in {expr!r}) is not in a scrape"
        # Grafana's own variables, as it would fill them in
        concrete = expr.replace("$__rate_interval", "1m").replace("$app", ".*")
        prometheus.query(concrete)  # asserts the query is valid PromQL
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["templating"]["list"][0]["query"]["query"] == "label_values(aperture_sessions, app)"


def test_the_shipped_alert_rules_and_config_pass_promtool_and_query_real_metrics(aperture, prometheus):
    promtool = require_tool("promtool", "the Debian package prometheus")
    config = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
    checked = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr  # also checks the rule file it names
    rules = (REPO_ROOT / "deploy" / "prometheus" / "aperture-alerts.yml").read_text()
    samples = parse(fetch(aperture.url("/metrics"))[2])
    scraped = {name for name, _ in samples}
    exprs = re.findall(r"expr: (.+)", rules)
    assert len(exprs) == 3
    for expr in exprs:
        for name in re.findall(r"\baperture_[a-z_]+\b", expr):
            assert name in scraped, f"{name} (in {expr!r}) is not in a scrape"
        prometheus.query(expr)  # valid PromQL against the real server

"""Fixtures of the deployment tests: a ``deployment`` per test, a TLS-tolerant browser per module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.harness import Deployment, deployment_dir, launch_browser


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"deploy_report_{report.when}", report)
    return report


@pytest.fixture
def deployment(server_factory: Any, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """Servers and proxies for one test; on failure their logs are printed (captured teardown)."""
    with deployment_dir() as workdir:
        deployed = Deployment(server_factory, workdir)
        try:
            yield deployed
        finally:
            deployed.stop_proxies()
            report = getattr(request.node, "deploy_report_call", None)
            if report is None or report.failed:
                print(deployed.diagnostics())


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Overrides the shared fixture: the same system Chromium, with --ignore-certificate-errors."""
    with launch_browser() as context:
        yield context

"""The templates under deploy/ and their renderer, without running a server.

Every template renders, and the result passes the tool's own checker: ``nginx -t``,
``apache2 -t`` and ``systemd-analyze verify``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import render as renderer
from deploy.render import MissingValues, TemplateError, UnusedValues, placeholders, render, render_text
from tests.deploy.harness import (
    APACHE,
    APACHE_MODULES,
    NGINX,
    SYSTEMD_ANALYZE,
    apache_account,
    current_user,
    deployment_dir,
    require_tool,
    self_signed_certificate,
    static_dir,
)
from tests.support.servers import REPO_ROOT

pytestmark = pytest.mark.timeout(60)

NGINX_TEMPLATES = ["basic", "static-alias", "ssl-termination", "unix-socket", "load-balancer"]
APACHE_TEMPLATES = ["myapp-prefix", "balancer"]
UNITS = ["aperture.service", "aperture@.service"]


@pytest.fixture
def workdir() -> Iterator[Path]:
    with deployment_dir() as path:
        yield path


# -- the renderer ----------------------------------------------------------------------------------


def test_placeholders_leave_config_syntax_alone() -> None:
    text = "listen @{listen}; proxy_set_header Host $host:$server_port; location @fallback {} a@b.org @@{x}"
    assert render_text(text, {"listen": 8080}) == (
        "listen 8080; proxy_set_header Host $host:$server_port; location @fallback {} a@b.org @{x}"
    )


def test_missing_unused_and_malformed_placeholders_are_errors() -> None:
    with pytest.raises(MissingValues, match="no value for backend, listen"):
        render_text("@{listen} @{backend}", {})
    with pytest.raises(UnusedValues, match="lisen"):
        render_text("@{listen}", {"listen": 1, "lisen": 2})
    with pytest.raises(TemplateError, match="Invalid placeholder"):
        render_text("@{ listen}", {})


def test_every_template_is_listed_and_documented() -> None:
    shipped = {path.as_posix() for path in renderer.templates()}
    expected = {f"nginx/{name}.conf" for name in NGINX_TEMPLATES}
    expected |= {f"apache/{name}.conf" for name in APACHE_TEMPLATES}
    expected |= {f"systemd/{name}" for name in UNITS} | {"systemd/aperture.env"}
    assert shipped == expected
    guide = (REPO_ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    for template in shipped:
        assert f"deploy/{template}" in guide, template
        text = (renderer.DEPLOY_DIR / template).read_text(encoding="utf-8")
        header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        for name in placeholders(template):
            assert f"@{{{name}}}" in header, f"{template}: placeholder {name} is not described in its header"


def test_command_line(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "deploy.render", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = run("--list", "nginx/basic.conf")
    assert listed.returncode == 0 and listed.stdout.split() == ["backend", "listen", "nginx_user"]
    out = tmp_path / "nginx.conf"
    done = run(
        "nginx/basic.conf", "-o", str(out), "listen=80", "backend=127.0.0.1:5100", "nginx_user=www-data"
    )
    assert done.returncode == 0, done.stderr
    assert "proxy_pass http://127.0.0.1:5100;" in out.read_text()
    missing = run("nginx/basic.conf", "listen=80")
    assert missing.returncode == 1 and "no value for backend, nginx_user" in missing.stderr
    assert "nginx/basic.conf" in run("--templates").stdout


# -- the tools' own checks -------------------------------------------------------------------------


def nginx_values(template: str, workdir: Path) -> dict[str, object]:
    values: dict[str, object] = {"nginx_user": current_user()[0], "listen": "127.0.0.1:8080"}
    wanted = placeholders(f"nginx/{template}.conf")
    if "backend" in wanted:
        values["backend"] = "127.0.0.1:5100"
    for i in (1, 2, 3):
        if f"backend{i}" in wanted:
            values[f"backend{i}"] = f"127.0.0.1:{5099 + i}"
    if "static_dir" in wanted:
        values["static_dir"] = static_dir()
    if "socket_path" in wanted:
        values["socket_path"] = workdir / "aperture.sock"
    if "ssl_certificate" in wanted:
        cert, key = self_signed_certificate(workdir)
        values.update(
            ssl_listen="127.0.0.1:8443", https_port=8443, ssl_certificate=cert, ssl_certificate_key=key
        )
    return values


@pytest.mark.parametrize("template", NGINX_TEMPLATES)
def test_nginx_accepts_the_config(template: str, workdir: Path) -> None:
    nginx = require_tool(NGINX, "the nginx configs are checked with nginx -t")
    conf = workdir / "nginx.conf"
    conf.write_text(render(f"nginx/{template}.conf", nginx_values(template, workdir)))
    check = subprocess.run(
        [nginx, "-t", "-p", f"{workdir}/", "-e", str(workdir / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0 and "test is successful" in check.stderr, check.stderr
    # Nothing nginx would write lands outside the prefix directory.
    assert "emerg" not in check.stderr and "/var/" not in check.stderr, check.stderr


@pytest.mark.parametrize("template", APACHE_TEMPLATES)
def test_apache_accepts_the_config(template: str, workdir: Path) -> None:
    apache = require_tool(APACHE, "the Apache configs are checked with apache2 -t")
    user, group = apache_account()
    values: dict[str, object] = {
        "server_root": workdir,
        "modules_dir": APACHE_MODULES,
        "apache_user": user,
        "apache_group": group,
        "listen": "127.0.0.1:8080",
        "static_dir": static_dir(),
    }
    wanted = placeholders(f"apache/{template}.conf")
    values.update({name: "127.0.0.1:5100" for name in wanted if name.startswith("backend")})
    conf = workdir / "apache2.conf"
    conf.write_text(render(f"apache/{template}.conf", values))
    check = subprocess.run([apache, "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and "Syntax OK" in check.stderr, check.stderr
    assert not re.search(r"AH\d+", check.stderr), check.stderr  # no warnings either


def aperture_executable() -> str:
    candidate = Path(sys.executable).with_name("aperture")
    return str(candidate) if candidate.exists() else (shutil.which("aperture") or "aperture-not-installed")


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verifies_the_unit(unit: str, workdir: Path) -> None:
    analyze = require_tool(SYSTEMD_ANALYZE, "the systemd units are checked with systemd-analyze verify")
    user, group = current_user()
    path = workdir / unit
    path.write_text(
        render(
            f"systemd/{unit}",
            aperture=aperture_executable(),
            user=user,
            group=group,
            working_dir=REPO_ROOT,
            env_file=renderer.DEPLOY_DIR / "systemd" / "aperture.env",
        )
    )
    check = subprocess.run(
        [analyze, "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    # Unknown keys and unparsable values are only warnings: there must be no output at all.
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check


def test_environment_file_has_only_assignments_and_comments() -> None:
    text = (renderer.DEPLOY_DIR / "systemd" / "aperture.env").read_text()
    assigned = set()
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(.*)", line)
            assert match, line
            assigned.add(match.group(1))
    assert {"APERTURE_APPS", "APERTURE_ARGS"} <= assigned


def test_missing_tool_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="in CI a missing tool is a failure"):
        require_tool("/nonexistent/nginx")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_tool("no-such-tool-here")
    assert require_tool("openssl").endswith("openssl")

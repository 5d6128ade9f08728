"""Configuring the session store (issue 10): URLs, the environment variable, TLS and passwords.

A bad `--session-store` (or `APERTURE_SESSION_STORE`) stops `aperture serve` at once with one line
naming the flag; the variable works like the flag; `rediss://` with a password reaches a TLS-only
redis-server whose certificate is checked against a CA made here with the `openssl` CLI; the
password never appears in Aperture's output; a wrong password leaves the store unavailable (logged
once) while pages keep working.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bokeh.util.token import get_session_id

from aperture.store.redis_store import session_key
from tests.store.test_store_trouble import (
    ROUTE,
    UNREACHABLE,
    release,
    round_trip,
    stored_value,
    until,
)
from tests.support.redis import RedisServer
from tests.support.servers import REPO_ROOT, ServerProcess, merged_env

APP = "tests/apps/store_h2/counter.py"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    yield redis_server
    release(redis_server)


BAD_URLS = [
    # (flag value, environment value, what the one line must say)
    ("http://x", None, "must be a redis://, rediss:// or unix:// URL"),
    ("redis://127.0.0.1:99999/0", None, "the port is not a number"),
    ("redis://127.0.0.1:six/0", None, "the port is not a number"),
    ("redis://127.0.0.1:6379/zero", None, "the path must be a database number"),
    ("redis://:bad-url-s3cret@127.0.0.1:6379/zero", None, "the path must be a database number"),
    (None, "http://x", "must be a redis://, rediss:// or unix:// URL"),
    (None, "redis://127.0.0.1:6379/db", "the path must be a database number"),
]


def test_a_bad_session_store_url_exits_with_one_line_naming_the_flag() -> None:
    started = []
    for flag, variable, _ in BAD_URLS:
        command = [sys.executable, "-m", "aperture", "serve", APP, "--port", "0", "--address", "127.0.0.1"]
        command += ["--session-store", flag] if flag else []
        env = merged_env({"APERTURE_SESSION_STORE": variable})
        started.append(
            subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    for proc, (flag, variable, expected) in zip(started, BAD_URLS, strict=True):
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError(
                f"aperture serve kept running with --session-store {flag or variable!r}"
            ) from None
        lines = [line for line in (out + err).splitlines() if line.strip()]
        assert proc.returncode != 0, (flag, variable, out, err)
        assert len(lines) == 1, (flag, variable, lines)
        assert "--session-store / APERTURE_SESSION_STORE" in lines[0] and expected in lines[0], lines
        assert "s3cret" not in lines[0]


async def test_environment_variable_works_like_the_flag(
    redis: RedisServer, server_factory: Any, tmp_path: Path
) -> None:
    server: ServerProcess = server_factory([APP], env={"APERTURE_SESSION_STORE": redis.url})
    server.wait_for_log(rf"Session store {redis.url}: this process is 127\.0\.0\.1:{server.port}\|")
    session_id = get_session_id(await round_trip(server.url(ROUTE), 6))
    store = redis.client()
    try:
        assert store.hget(session_key(ROUTE, session_id), "owner") == f"127.0.0.1:{server.port}|".encode()
        await until(lambda: stored_value(store, session_id) == 6, "the change stored")
    finally:
        store.close()


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1: (certificate, key, CA certificate)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, request = directory / "server.crt", directory / "server.key", directory / "server.csr"
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=aperture store test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
        ["openssl", "req", *ec, "-keyout", key, "-out", request, "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", extensions],
    ]  # fmt: skip
    for command in commands:
        subprocess.run([str(part) for part in command], check=True, capture_output=True, timeout=30)
    key.chmod(0o600)
    return cert, key, ca


async def test_rediss_with_a_password_end_to_end_and_the_password_never_logged(
    server_factory: Any, tmp_path: Path
) -> None:
    password = "pw-" + secrets.token_hex(12)
    cert, key, ca = make_certificates(tmp_path / "tls")
    redis = RedisServer(tmp_path / "redis", password=password, tls=(cert, key, ca)).start()
    store = redis.client()
    try:
        # Checked TLS (the CA made above, the certificate's IP address) on a TLS-only port.
        url = f"rediss://:{password}@127.0.0.1:{redis.port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"
        url += "&ssl_check_hostname=true"
        server: ServerProcess = server_factory([APP], ["--session-store", url])
        server.wait_for_log(rf"Session store rediss://:\*\*\*@127\.0\.0\.1:{redis.port}/0\?ssl_ca_certs=")
        session_id = get_session_id(await round_trip(server.url(ROUTE), 17))
        assert store.exists(session_key(ROUTE, session_id))
        await until(lambda: stored_value(store, session_id) == 17, "the change stored over TLS")
        assert list(store.scan_iter(match="aperture:s:*")) == [session_key(ROUTE, session_id).encode()]

        release(redis, kill=True)  # an outage: its log line names the store, without the password
        await round_trip(server.url(ROUTE), 18)
        server.wait_for_log(UNREACHABLE)
        server.stop()
        logs = server.logs()
        assert "rediss://:***@127.0.0.1" in logs
        assert password not in logs, "the store password appeared in Aperture's output"
    finally:
        store.close()
        release(redis)


@pytest.mark.parametrize("trouble", ["wrong password", "untrusted certificate"])
async def test_a_store_refusing_us_leaves_it_unavailable_and_pages_working(
    server_factory: Any, tmp_path: Path, trouble: str
) -> None:
    password, wrong = "pw-" + secrets.token_hex(12), "wrong-" + secrets.token_hex(12)
    if trouble == "wrong password":
        redis = RedisServer(tmp_path / "redis", password=password).start()
        url, expected = (
            f"redis://:{wrong}@127.0.0.1:{redis.port}/0",
            ("WRONGPASS", "invalid username-password"),
        )
    else:  # the right password, but the URL trusts only the system's CAs, not the one made here
        tls = make_certificates(tmp_path / "tls")
        redis = RedisServer(tmp_path / "redis", password=password, tls=tls).start()
        url, expected = f"rediss://:{password}@127.0.0.1:{redis.port}/0", ("CERTIFICATE_VERIFY_FAILED",)
    try:
        server: ServerProcess = server_factory([APP], ["--session-store", url])
        for value in range(5):  # pages, websockets, PULL-DOC and PATCH-DOC all work, unstored
            await round_trip(server.url(ROUTE), value)
        logs = server.logs()
        lines = [line for line in logs.splitlines() if UNREACHABLE.search(line)]
        assert len(lines) == 1, logs
        assert f"{url.split(':')[0]}://:***@127.0.0.1:{redis.port}/0 unreachable" in lines[0], lines
        assert any(text in lines[0] for text in expected), lines
        assert wrong not in logs and password not in logs
        store = redis.client()
        try:
            assert list(store.scan_iter(match="aperture:*")) == [], "nothing is stored with a wrong password"
        finally:
            store.close()
    finally:
        release(redis)


async def test_a_password_in_the_query_string_is_not_logged_either(
    server_factory: Any, tmp_path: Path
) -> None:
    """redis-py also takes the password as `?password=` (its documented form for unix:// URLs)."""
    password = "pw-" + secrets.token_hex(12)
    redis = RedisServer(tmp_path / "redis", password=password).start()
    try:
        url = f"redis://127.0.0.1:{redis.port}/0?password={password}"
        server: ServerProcess = server_factory([APP], ["--session-store", url])
        session_id = get_session_id(await round_trip(server.url(ROUTE), 4))
        store = redis.client()
        try:
            assert store.exists(session_key(ROUTE, session_id)), "the query-string password works"
        finally:
            store.close()
        release(redis, kill=True)
        await round_trip(server.url(ROUTE), 5)
        server.wait_for_log(UNREACHABLE)
        assert password not in server.logs(), "the store password appeared in Aperture's output"
    finally:
        release(redis)

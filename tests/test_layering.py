"""The dependency rules of the package layout (see docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aperture"
BOKEH_SERVER_SYSTEM = (
    "bokeh.server",
    "bokeh.client",
    "bokeh.command",
    "bokeh.protocol",
    "bokeh.embed.server",
    "bokeh.util.token",
)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("bokeh.")
        ):
            names.add(node.value)
    return names


def modules(subpackage: str = "") -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


def offenders(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in paths
        for name in sorted(imports_of(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_no_module_imports_bokehs_server_system():
    assert offenders(modules(), BOKEH_SERVER_SYSTEM) == []


def test_only_web_imports_tornado():
    others = [p for p in modules() if "web" not in p.relative_to(PACKAGE).parts]
    assert offenders(others, ("tornado",)) == []


def test_protocol_and_security_use_only_the_standard_library():
    for sub in ("protocol", "security"):
        bad = offenders(
            modules(sub), ("bokeh", "tornado", "aperture.sessions", "aperture.web", "aperture.core")
        )
        assert bad == []


def test_sessions_know_no_web_framework():
    assert offenders(modules("sessions"), ("tornado", "aperture.web")) == []


def test_store_knows_no_web_framework_nor_sessions():
    assert (
        offenders(modules("store"), ("tornado", "aperture.web", "aperture.sessions", "aperture.core")) == []
    )


def test_only_the_store_talks_to_redis():
    others = [p for p in modules() if "store" not in p.relative_to(PACKAGE).parts]
    assert offenders(others, ("redis",)) == []


def test_identity_knows_no_web_framework_nor_sessions():
    assert (
        offenders(modules("identity"), ("tornado", "aperture.web", "aperture.sessions", "aperture.core"))
        == []
    )


def test_only_operations_talk_to_prometheus_and_only_identity_does_jose_and_crypto():
    outside_operations = [p for p in modules() if "operations" not in p.relative_to(PACKAGE).parts]
    assert offenders(outside_operations, ("prometheus_client",)) == []
    outside_identity = [p for p in modules() if "identity" not in p.relative_to(PACKAGE).parts]
    assert offenders(outside_identity, ("joserfc", "cryptography")) == []


def test_operations_know_no_web_framework():
    assert offenders(modules("operations"), ("tornado", "aperture.web")) == []

"""`aperture.security` imports only the standard library and `aperture.errors` (and itself)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import aperture.security

PACKAGE = Path(aperture.security.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            names.add(node.module or "")
    return names


def test_only_stdlib_and_errors_are_imported() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "tokens.py", "origins.py"}
    for module in modules:
        for name in _imported_modules(module):
            top = name.partition(".")[0]
            allowed = (
                top in sys.stdlib_module_names
                or name == "aperture.errors"
                or name.startswith("aperture.security.")
            )
            assert allowed, f"{module.name} imports {name}"


def test_importing_the_package_loads_no_framework() -> None:
    code = (
        "import sys, aperture.security; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('bokeh', 'tornado')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

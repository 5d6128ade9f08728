"""`ServerCore.start` freezes the start-up heap and raises the youngest GC threshold, once loaded.

Checked in a fresh interpreter each time: both are process-wide settings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, gc, sys
sys.path.insert(0, {root!r})
{before}
from aperture.config import Config
from aperture.core import ServerCore
from bokeh.application import Application
async def main():
    core = ServerCore(Config(), {{"/app": Application()}})
    await core.start()
    print(gc.get_freeze_count() > 1000, gc.get_threshold()[0], gc.isenabled())
    await core.stop()
asyncio.run(main())
"""


def _run(before: str = "") -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(root=str(ROOT), before=before)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.split()


def test_startup_heap_is_frozen_and_young_threshold_raised() -> None:
    assert _run() == ["True", "10000", "True"]


@pytest.mark.parametrize(
    ("before", "young"), [("gc.set_threshold(50000)", "50000"), ("gc.set_threshold(0)", "0")]
)
def test_a_tuned_or_disabled_threshold_is_kept(before: str, young: str) -> None:
    assert _run("import gc; " + before) == ["True", young, "True"]

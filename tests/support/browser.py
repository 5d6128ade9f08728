"""Drive the system's headless Chromium with Playwright and look inside BokehJS.

``launch_chromium()`` opens one persistent Chromium context with a throw-away
profile directory; Playwright's own browser downloads are never used. A
``BokehPage`` wraps a Playwright page: it records console errors and uncaught
page errors from the moment it is created, and reads the document through
BokehJS's public JS API (``Bokeh.documents[0].get_model_by_name(name)`` for
models, ``Bokeh.index.find_one(model).el`` for a model's view element) rather
than through DOM structure, which lives in shadow roots and changes between
BokehJS releases. Names refer to the ``name=`` given to models in the apps.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_TIMEOUT_MS = 15_000

# Walks the document and every open shadow root, so it finds BokehJS's canvases.
# Truthy once some canvas with a non-zero size has a pixel with non-zero alpha.
PAINTED_CANVAS_JS = """
() => {
  const canvases = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.tagName === "CANVAS") canvases.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  for (const canvas of canvases) {
    if (canvas.width === 0 || canvas.height === 0) continue;
    const rect = canvas.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) continue;
    const ctx = canvas.getContext("2d");
    if (ctx === null) continue;  // a WebGL canvas; BokehJS blits those onto a 2D one anyway
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < data.length; i += 4) {
      if (data[i] !== 0) return {width: canvas.width, height: canvas.height, canvases: canvases.length};
    }
  }
  return null;
}
"""

# Truthy once the page's Bokeh document exists and the view of every root embedded in the page
# (every ``data-root-id`` placeholder, else every document root) has finished rendering.
BOKEH_READY_JS = """
() => {
  const Bokeh = window.Bokeh;
  if (Bokeh == null || Bokeh.documents == null || Bokeh.documents.length === 0) return false;
  let ids = Array.from(document.querySelectorAll("[data-root-id]"), (el) => el.dataset.rootId);
  if (ids.length === 0) ids = Bokeh.documents.flatMap((doc) => doc.roots().map((root) => root.id));
  if (ids.length === 0) return false;
  return ids.every((id) => {
    const view = Bokeh.index.find_one_by_id(id);
    return view != null && view.has_finished();
  });
}
"""

# A statement binding ``model`` to the model called ``name`` (a variable in scope), or throwing.
FIND_MODEL_JS = (
    "const model = Bokeh.documents[0].get_model_by_name(name);"
    " if (model == null) throw new Error(`no model named ${JSON.stringify(name)}`);"
)


def data_column_js(model: str, column: str) -> str:
    """JS for one column of a data source, whether BokehJS holds ``data`` as a Map or an object."""
    key = json.dumps(column)
    return f"({model}.data instanceof Map ? {model}.data.get({key}) : {model}.data[{key}])"


def require_chromium() -> str:
    """The Chromium path; otherwise skip the test, or fail it when ``CI=true``."""
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return str(CHROMIUM)
    message = f"{CHROMIUM} is not installed; browser tests need the system Chromium"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message + " (in CI a missing tool is a failure, not a skip)")
    pytest.skip(message)


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """Yield a Playwright ``BrowserContext`` on the system Chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with (
        tempfile.TemporaryDirectory(prefix="aperture-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900},
        )
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@dataclass
class BokehPage:
    """A Playwright page plus the console/page errors it has seen and BokehJS helpers."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            location = message.location or {}
            where = location.get("url", "")
            self.console_errors.append(f"{message.text} ({where})" if where else message.text)

    # -- loading ----------------------------------------------------------------------------

    def open(self, url: str, *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Any:
        """Load ``url`` and wait until BokehJS has rendered every root; return the response."""
        response = self.page.goto(url, wait_until="load", timeout=timeout_ms)
        assert response is not None and response.ok, f"GET {url} -> {response and response.status}"
        self.wait_for_bokeh(timeout_ms=timeout_ms)
        return response

    def wait_for_bokeh(self, *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
        self._wait(BOKEH_READY_JS, None, timeout_ms, "BokehJS to render the document")

    def wait_for_painted_canvas(self, *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> dict[str, int]:
        """Wait for a visible canvas with at least one non-transparent pixel; return its size."""
        handle = self._wait(PAINTED_CANVAS_JS, None, timeout_ms, "a painted canvas")
        return handle.json_value()  # type: ignore[no-any-return]

    # -- reading and writing models ---------------------------------------------------------

    def model_value(self, name: str, expression: str) -> Any:
        """Evaluate ``expression`` (JS, with ``model`` bound to the named model) and return it."""
        return self.page.evaluate(f"(name) => {{ {FIND_MODEL_JS} return ({expression}); }}", name)

    def column(self, name: str, column: str) -> list[Any]:
        """One column of the named ColumnDataSource, as a list."""
        return self.model_value(name, f"Array.from({data_column_js('model', column)})")  # type: ignore[no-any-return]

    def set_model(self, name: str, attr: str, value: Any) -> None:
        """Set a property from the browser side, as a widget would; the server sees the change."""
        self.page.evaluate(
            f"([name, attr, value]) => {{ {FIND_MODEL_JS} model[attr] = value; }}", [name, attr, value]
        )

    def wait_for_model(
        self, name: str, predicate: str, arg: Any = None, *, timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> Any:
        """Wait until ``predicate`` (JS over ``model`` and ``arg``) is truthy; return its value."""
        script = f"""
            ([name, arg]) => {{
                const model = Bokeh.documents[0].get_model_by_name(name);
                if (model == null) return false;
                return ({predicate});
            }}
        """
        what = f"model {name!r} to satisfy {predicate} (arg={json.dumps(arg)})"
        return self._wait(script, [name, arg], timeout_ms, what).json_value()

    def view_element(self, name: str) -> Any:
        """The ``ElementHandle`` of the named model's view (a shadow host in BokehJS 3)."""
        handle = self.page.evaluate_handle(
            f"(name) => {{ {FIND_MODEL_JS} return Bokeh.index.find_one(model).el; }}", name
        )
        element = handle.as_element()
        assert element is not None, f"model {name!r} has no view element"
        return element

    def view_text(self, name: str) -> str:
        """The text a leaf widget's view shows, read from inside its shadow root (styles skipped)."""
        script = f"""(name) => {{
            {FIND_MODEL_JS}
            const el = Bokeh.index.find_one(model).el;
            const root = el.shadowRoot ?? el;
            const skip = new Set(["STYLE", "LINK", "SCRIPT"]);
            return Array.from(root.children, (child) => skip.has(child.tagName) ? "" : child.innerText)
                .filter((text) => text !== "").join("\\n");
        }}"""
        return self.page.evaluate(script, name)  # type: ignore[no-any-return]

    # -- errors -----------------------------------------------------------------------------

    def errors(self, ignore: tuple[str, ...] = ()) -> list[str]:
        """Console errors and page errors, minus those matching any regex in ``ignore``."""
        found = [f"console: {e}" for e in self.console_errors]
        found += [f"pageerror: {e}" for e in self.page_errors]
        return [e for e in found if not any(re.search(pattern, e) for pattern in ignore)]

    def assert_no_errors(self, ignore: tuple[str, ...] = ()) -> None:
        errors = self.errors(ignore)
        assert not errors, "browser reported errors:\n" + "\n".join(errors)

    def _wait(self, script: str, arg: Any, timeout_ms: int, what: str) -> Any:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            return self.page.wait_for_function(script, arg=arg, timeout=timeout_ms, polling=50)
        except PlaywrightTimeout as exc:
            errors = "\n".join(self.errors()) or "(none)"
            raise AssertionError(
                f"timed out after {timeout_ms} ms waiting for {what}\nbrowser errors:\n{errors}"
            ) from exc

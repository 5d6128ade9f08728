"""S6 browser: headless Chromium (Playwright, system /usr/bin/chromium) loading the `sliders` page.

Time from navigation start to the first painted plot: an init script polls every 2 ms until
`Bokeh.documents[0].is_idle` (BokehJS sets it once every root view, i.e. the plot canvas, has
finished rendering) and a canvas exists, and records `performance.now()` (ms since navigation
start). Cold = first load in a fresh browser context (empty cache); warm = later loads in the same
context (BokehJS assets from cache). Bytes = sum of CDP `encodedDataLength` over HTTP requests of
the load (page + assets; the websocket is not counted). The browser runs on the load generator's
core.
"""

from __future__ import annotations

import os
from typing import Any

from bench.servers import Slot

from .common import NOT_WORSE_LOWER, Config, Goal, Metric, Outcome, Scenario, percentile

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

_PROBE = """
(() => {
  const t = setInterval(() => {
    const B = window.Bokeh;
    if (!B || !B.documents || B.documents.length === 0 || !B.documents[0].is_idle) return;
    clearInterval(t);
    window.__bench_painted = performance.now();
  }, 2);
  setTimeout(() => clearInterval(t), 60000);
})();
"""


def _has_canvas_js() -> str:
    return """() => {
      const walk = (root) => {
        for (const el of root.querySelectorAll('*')) {
          if (el.tagName === 'CANVAS' && el.width > 0) return true;
          if (el.shadowRoot && walk(el.shadowRoot)) return true;
        }
        return false;
      };
      return walk(document);
    }"""


async def _load(context: Any, url: str, timeout_ms: float) -> tuple[float, int, int]:
    """Navigate a new page to `url`; return (ms to painted plot, bytes over HTTP, requests)."""
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    seen: dict[str, int] = {}
    ws_ids: set[str] = set()
    cdp.on("Network.webSocketCreated", lambda p: ws_ids.add(p["requestId"]))
    cdp.on("Network.loadingFinished", lambda p: seen.__setitem__(p["requestId"], int(p["encodedDataLength"])))
    try:
        await page.goto(url, wait_until="commit", timeout=timeout_ms)
        await page.wait_for_function(
            "() => window.__bench_painted !== undefined", timeout=timeout_ms, polling=20
        )
        painted = float(await page.evaluate("() => window.__bench_painted"))
        if not await page.evaluate(_has_canvas_js()):
            raise RuntimeError("document idle but no plot canvas found")
        await page.wait_for_load_state("load", timeout=timeout_ms)
        total = sum(v for k, v in seen.items() if k not in ws_ids)
        return painted, total, len(seen)
    finally:
        await cdp.detach()
        await page.close()


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    if not os.path.exists(CHROMIUM):
        out.skipped = f"{CHROMIUM} not found"
        return out
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        out.skipped = f"playwright not importable: {exc}"
        return out
    cold: list[float] = []
    warm: list[float] = []
    cold_b: list[int] = []
    warm_b: list[int] = []
    async with slot.serve(["sliders"], ["--allow-websocket-origin", "127.0.0.1:{port}"]) as srv:
        url = f"http://127.0.0.1:{srv.port}/sliders"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                for _ in range(cfg.q(2, 4)):
                    context = await browser.new_context()
                    await context.add_init_script(_PROBE)
                    try:
                        t, b, n = await _load(context, url, 60_000)
                        cold.append(t)
                        cold_b.append(b)
                        out.info["cold_requests"] = n
                        for _ in range(cfg.q(2, 4)):
                            t, b, n = await _load(context, url, 60_000)
                            warm.append(t)
                            warm_b.append(b)
                            out.info["warm_requests"] = n
                    finally:
                        await context.close()
            finally:
                await browser.close()
    out.metrics["cold_ms"] = round(percentile(cold, 50), 1)
    out.metrics["warm_ms"] = round(percentile(warm, 50), 1)
    out.metrics["cold_kib"] = round(percentile(cold_b, 50) / 1024, 1)
    out.metrics["warm_kib"] = round(percentile(warm_b, 50) / 1024, 1)
    out.info.update(cold_all_ms=[round(x, 1) for x in cold], warm_all_ms=[round(x, 1) for x in warm])
    return out


SCENARIO = Scenario(
    name="S6",
    title="browser first paint",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric("cold_ms", "navigation → painted plot, cold cache", "ms", "lower", Goal("ratio", "<=", 0.85)),
        Metric("warm_ms", "navigation → painted plot, warm cache", "ms", "lower", NOT_WORSE_LOWER),
        Metric(
            "cold_kib", "bytes transferred (page + assets), cold", "KiB", "lower", Goal("ratio", "<=", 0.35)
        ),
        Metric("warm_kib", "bytes transferred (page + assets), warm", "KiB", "lower", NOT_WORSE_LOWER),
    ),
    run=run,
    budget_s=(120, 300),
)

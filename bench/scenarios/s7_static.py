"""S7 static assets: requests/s for the main BokehJS bundle (`bokeh.min.js`, URL taken from the app
page, with its `?v=` hash) by 8 keep-alive clients sending `Accept-Encoding: gzip`.

Requests/s = 8 / mean request time (Little's law). Each request reads the whole body;
`kib_per_response` is the body size as sent (compressed or not).
"""

from __future__ import annotations

from urllib.parse import urljoin

from bench.loadgen.http import HTTPConnection, Response, extract_script_urls
from bench.servers import Slot

from .common import NOT_WORSE_LOWER, Config, Goal, Metric, Outcome, Scenario, closed_loop

HEADERS = {"Accept-Encoding": "gzip, deflate"}


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    async with slot.serve(["hello"]) as srv:
        http = HTTPConnection(srv.host, srv.port)
        page = await http.get("/hello")
        urls = [u for u in extract_script_urls(page.text) if "/bokeh.min.js" in u or "/bokeh.js" in u]
        if not urls:
            raise RuntimeError("no bokeh.min.js script URL in the page")
        url = urljoin("/hello", urls[0])
        first = await http.get(url, HEADERS)
        await http.close()
        if first.status != 200:
            raise RuntimeError(f"GET {url}: HTTP {first.status}")
        conns = [HTTPConnection(srv.host, srv.port) for _ in range(8)]
        bad: list[Response] = []

        async def step(c: HTTPConnection, _i: int) -> None:
            r = await c.get(url, HEADERS)
            if r.status != 200:
                bad.append(r)

        res = await closed_loop(conns, step, duration=cfg.q(3.0, 10.0), warmup=1.0)
        for c in conns:
            await c.close()
    out.metrics["req_per_s"] = round(res.rate_little, 1)
    out.metrics["kib_per_response"] = round(len(first.body) / 1024, 1)
    out.info.update(res.summary())
    out.info.update(
        url=url.split("?")[0],
        content_encoding=first.headers.get("content-encoding", "identity"),
        non_200=len(bad),
    )
    return out


SCENARIO = Scenario(
    name="S7",
    title="static assets",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric(
            "req_per_s",
            "bokeh.min.js requests/s (gzip accepted), 8 clients",
            "1/s",
            "higher",
            Goal("ratio", ">=", 5.0),
            ceiling=True,
        ),
        Metric("kib_per_response", "bytes per bokeh.min.js response", "KiB", "lower", NOT_WORSE_LOWER),
    ),
    run=run,
    budget_s=(45, 90),
    ceiling_ok=True,
)

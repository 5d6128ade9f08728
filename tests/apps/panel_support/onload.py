"""`pn.state.onload` callbacks, a sync one and an async one, as Panel's documentation writes them.

Both change a Markdown pane (CSS classes `sync-status` and `async-status`) and print a
`panel-support onload:` line; the sync one also starts a periodic callback that counts five
ticks in the `ticks` pane. Panel runs them once the browser reports the document ready, which
only `panel serve` (and Aperture) wire up: under `bokeh serve` they never run.
"""

import asyncio

import panel as pn

pn.extension()

sync_status = pn.pane.Markdown("sync: waiting", css_classes=["sync-status"])
async_status = pn.pane.Markdown("async: waiting", css_classes=["async-status"])
ticks = pn.pane.Markdown("ticks: 0", css_classes=["ticks"])
count = 0


def tick():
    global count
    count += 1
    ticks.object = f"ticks: {count}"


def load_sync():
    sync_status.object = "sync: loaded"
    pn.state.add_periodic_callback(tick, period=100, count=5)
    print("panel-support onload: sync", flush=True)


async def load_async():
    await asyncio.sleep(0.05)
    async_status.object = "async: loaded"
    print("panel-support onload: async", flush=True)


pn.state.onload(load_sync)
pn.state.onload(load_async)
pn.Column(sync_status, async_status, ticks).servable(title="onload")

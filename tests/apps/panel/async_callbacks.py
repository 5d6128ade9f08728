"""Async callbacks: an ``async def`` button handler and an async function bound with ``pn.bind``.

Both await ``asyncio.sleep`` on the server's event loop before answering, the
way Panel's async how-to writes I/O-bound callbacks. Each prints an
``async_callbacks:`` line when it finishes.
"""

import asyncio

import panel as pn

pn.extension()

button = pn.widgets.Button(name="Fetch", css_classes=["fetch"])
result = pn.pane.Markdown("not fetched", css_classes=["result"])
word = pn.widgets.TextInput(name="Word", value="panel", css_classes=["word"])
clicks = 0


async def fetch(event) -> None:
    global clicks
    clicks += 1
    result.object = "fetching..."
    await asyncio.sleep(0.2)
    result.object = f"fetched #{clicks}"
    print(f"async_callbacks: fetched #{clicks}", flush=True)


async def shout(text: str) -> str:
    await asyncio.sleep(0.1)
    print(f"async_callbacks: shout {text!r}", flush=True)
    return f"{text.upper()}!"


button.on_click(fetch)

pn.Column(button, result, word, pn.pane.Markdown(pn.bind(shout, word), css_classes=["shout"])).servable(
    title="Panel async"
)

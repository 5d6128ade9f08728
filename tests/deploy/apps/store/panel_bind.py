"""A Panel app in the style of Panel's docs: widgets, and a Markdown pane bound to them with ``pn.bind``.

Every call of the bound function prints a ``panel_bind:`` line with the values it got and the
process it ran in, and shows the same in the page, so a test can tell which process computed the
output and from which widget values. Elements carry ``css_classes`` so tests can find them.

Panel turns BokehJS's automatic reconnection off unless ``pn.config.reconnect`` is True (its
default is False): without it a page never reconnects after losing its server, whatever the
server keeps.
"""

import os

import panel as pn

pn.extension(reconnect=True)

count = pn.widgets.IntSlider(name="Count", start=1, end=9, value=2, css_classes=["count-slider"])
word = pn.widgets.TextInput(name="Word", value="ab", css_classes=["word-input"])
colour = pn.widgets.Select(
    name="Colour", options=["red", "green", "blue"], value="red", css_classes=["colour-select"]
)


def describe(count: int, word: str, colour: str) -> str:
    print(f"panel_bind: describe count={count} word={word!r} colour={colour} pid={os.getpid()}", flush=True)
    return f"{word * count} in {colour} (count={count}, pid={os.getpid()})"


pn.Column(
    "# Bound output",
    count,
    word,
    colour,
    pn.pane.Markdown(pn.bind(describe, count, word, colour), css_classes=["output"]),
).servable()

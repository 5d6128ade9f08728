"""``pn.bind`` and ``pn.rx`` with widgets in a FastListTemplate, as Panel's getting-started guide teaches.

The sidebar holds a text input and an integer slider; the main area shows a
greeting bound to both with ``pn.bind``, a total computed with ``pn.rx`` and a
bound function that returns a new pane each time.
Every call of the bound function prints a ``bind_template:`` line, so a test
sees in the server log that the browser's input reached Python. Elements carry
``css_classes`` so tests can find them through the shadow DOM.
"""

import panel as pn

pn.extension()

name = pn.widgets.TextInput(name="Your name", value="world", css_classes=["name-input"])
count = pn.widgets.IntSlider(name="Count", start=1, end=5, value=1, css_classes=["count-slider"])


def greet(who: str, times: int) -> str:
    print(f"bind_template: greet who={who!r} times={times}", flush=True)
    return "Hello, " + ", ".join([f"{who}!"] * times)


def stars(times: int) -> pn.pane.Markdown:
    # A new pane each time, which Panel swaps into the page.
    return pn.pane.Markdown("\u2605" * times + f" ({times} stars)")


def destroyed(session_context) -> None:
    print("bind_template: session destroyed", flush=True)


greeting = pn.pane.Markdown(pn.bind(greet, name, count), css_classes=["greeting"])
total = pn.pane.Markdown(pn.rx("Total: {} items").format(count.rx() * 10), css_classes=["total"])
pn.state.on_session_destroyed(destroyed)

pn.template.FastListTemplate(
    title="Panel bind and rx",
    sidebar=[name, count],
    main=[greeting, total, pn.bind(stars, count)],
).servable()

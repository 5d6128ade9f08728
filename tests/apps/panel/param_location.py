"""``pn.Param`` over a Parameterized class, synced to the URL with ``pn.state.location``.

The query string seeds the settings (``?wave=square&freq=2.5``) and every change
made in the widgets is written back to the browser's URL by
``pn.state.location.sync``. ``pn.state.session_args`` supplies the visitor's
name (``?user=Ada``). A ``@param.depends`` method renders a summary of the
settings and prints a ``param_location:`` line each time it runs; so does
``pn.state.on_session_destroyed`` when the session ends.
"""

import panel as pn
import param

pn.extension()


class Wave(param.Parameterized):
    waveform = param.Selector(default="sine", objects=["sine", "square", "triangle"])
    frequency = param.Number(default=1.0, bounds=(0.1, 10.0), step=0.1)
    label = param.String(default="my wave")

    @param.depends("waveform", "frequency", "label")
    def summary(self) -> str:
        text = f"{self.label}: {self.waveform} at {self.frequency:g} Hz"
        print(f"param_location: summary {text!r}", flush=True)
        return text


wave = Wave()
pn.state.location.sync(wave, {"waveform": "wave", "frequency": "freq"})

user = pn.state.session_args.get("user", [b"stranger"])[0].decode()
widgets = pn.Param(
    wave,
    widgets={"waveform": {"css_classes": ["waveform"]}, "label": {"css_classes": ["label"]}},
    show_name=False,
)


def destroyed(session_context) -> None:
    print("param_location: session destroyed", flush=True)


pn.state.on_session_destroyed(destroyed)

pn.Column(
    pn.pane.Markdown(f"Hello, {user}!", css_classes=["user"]),
    widgets,
    wave.summary,
).servable(title="Panel Param and location")

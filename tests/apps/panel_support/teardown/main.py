"""A Panel session that Panel records in `pn.state`; with `?report=1`, a report instead (app_hooks.py).

A session syncs a widget to the URL (`pn.state.location`), shows a `pn.bind` view in a
FastListTemplate (in a plain Column with `?plain=1`), has notifications, a Panel periodic
callback and an onload callback, so Panel keeps it in `pn.state._locations`, `_views`,
`_templates`, `_notifications`, `_periodic`, `_onload` and `_browsers`. Its
`pn.state.on_session_destroyed` callback prints what it reads of the app's globals.
"""

import panel as pn

doc = pn.state.curdoc
arguments = doc.session_context.request.arguments

if "report" in arguments:
    pn.state.cache["teardown_report"](doc)
    pn.pane.Markdown("report").servable()
else:
    pn.extension(notifications=True)
    slider = pn.widgets.IntSlider(name="n", start=0, end=10, value=int(arguments.get("n", [b"3"])[0]))
    pn.state.location.sync(slider, {"value": "n"})
    pn.state.add_periodic_callback(lambda: None, period=1000)
    pn.state.onload(lambda: None)
    if "plain" in arguments:
        view = pn.bind(lambda n: pn.pane.Markdown(f"n = {n}"), slider)
        pn.Column(slider, view).servable(title="teardown probe")
    else:
        template = pn.template.FastListTemplate(title="teardown probe")
        template.sidebar.append(slider)
        template.main.append(pn.bind(lambda n: pn.pane.Markdown(f"n = {n}"), slider))
        template.servable()

    def goodbye(session_context):
        try:
            n = slider.value
        except NameError:  # bokeh serve has cleared the app's globals by now
            n = "gone"
        print(f"teardown callback: n={n}", flush=True)

    pn.state.on_session_destroyed(goodbye)

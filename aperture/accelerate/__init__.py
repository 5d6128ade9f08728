"""Faster versions of the Bokeh work a session does, with Bokeh's exact results.

`serialization` encodes documents and events (`encode_document`, `encode_events`,
`FastSerializer`). Nothing here changes Bokeh for other code in the process, and
Bokeh itself is the oracle of the differential tests in `tests/accelerate/`.
"""

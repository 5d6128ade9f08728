"""Sessions: a Bokeh document, its lock, its callbacks and the connections watching it."""

"""Turning command-line paths and Python functions into runnable Bokeh applications.

(Documents' own `on_session_destroyed` callbacks are run by `AppRunner.document_destroyed`,
not by a `DocumentLifecycleHandler`, which would follow them with a `gc.collect()` per session.)
"""

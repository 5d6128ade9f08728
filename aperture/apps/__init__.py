"""Turning command-line paths and Python functions into runnable Bokeh applications."""

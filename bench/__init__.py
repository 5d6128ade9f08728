"""Side-by-side benchmark of two Bokeh servers (Aperture vs. `bokeh serve`); see bench/README.md."""

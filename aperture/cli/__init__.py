"""The `aperture` command: `serve`, `secret` and `static`."""

"""Deployment configurations for Aperture (nginx, Apache, systemd) and the renderer that fills them in.

See ``docs/deployment.md`` and ``python -m deploy.render --help``.
"""

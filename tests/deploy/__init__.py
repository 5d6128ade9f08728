"""Deployment tests: the configs under deploy/ run for real (nginx, Apache, systemd-analyze)."""

"""`aperture serve`: the flags of `bokeh serve`, generated from `aperture.config.SETTINGS`.

Configuration errors and apps that cannot load end the command with one line on
stderr and exit status 1; argument syntax errors exit 2 (argparse).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from typing import Any

from aperture.config import Config, resolve
from aperture.errors import AppLoadError, ConfigError
from aperture.options import SETTINGS, Setting
from aperture.security.origins import has_wildcard

log = logging.getLogger("aperture.server")


def _add_setting(parser: argparse.ArgumentParser, setting: Setting) -> None:
    help_text = setting.help + (f" [env: {setting.env}]" if setting.env else "")
    if setting.pending:
        help_text += f" (Not available yet: this option {setting.pending}.)"
    kw: dict[str, Any] = {"dest": setting.name, "help": help_text}
    if setting.kind == "bool":
        parser.add_argument(*setting.flags, action="store_true", default=None, **kw)
        return
    if setting.metavar:
        kw["metavar"] = setting.metavar
    if setting.kind == "int":
        kw["type"] = int
    elif setting.kind == "choice":
        kw["choices"] = setting.choices
    elif setting.kind == "list":
        kw["nargs"] = "+"
    elif setting.kind == "append":
        kw["action"] = "append"
    elif setting.kind == "remainder":
        kw["nargs"] = argparse.REMAINDER
    elif setting.kind == "optional-list":
        kw["nargs"] = "*"
        kw["metavar"] = "FILES-TO-WATCH"
    parser.add_argument(*setting.flags, default=None, **kw)


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="Serve Bokeh applications (same flags as `bokeh serve`).",
        description="Serve one or more Bokeh applications: scripts (.py), notebooks (.ipynb) or directories.",
    )
    parser.add_argument(
        "apps",
        nargs="*",
        metavar="DIRECTORY-OR-SCRIPT",
        help="The app scripts, notebooks or directories to serve.",
    )
    for setting in SETTINGS:
        _add_setting(parser, setting)
    parser.set_defaults(run=run)


def configure_logging(config: Config) -> None:
    from aperture.operations import logs

    logs.configure(config)


def fail(message: str) -> int:
    print(f"aperture: error: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    flags = vars(args)
    try:
        config = resolve(flags, os.environ)
    except ConfigError as exc:
        return fail(str(exc))
    try:
        configure_logging(config)
    except ConfigError as exc:  # a --log-format or --log-file that cannot work
        return fail(str(exc))
    if config.dev is not None and os.environ.get("APERTURE_DEV_CHILD") != "1":
        from aperture.cli.reload import supervise

        return supervise(config, sys.argv)
    return serve(config)


def serve(config: Config) -> int:
    from aperture.apps.loading import applications_for_paths
    from aperture.server import Server, versions

    try:
        apps = applications_for_paths(config.apps, config.argv, config.glob)
        server = Server(apps, config=config)
        server.bind()
    except (AppLoadError, ConfigError) as exc:
        return fail(str(exc))
    log.info("Starting %s", versions())
    for entry in config.env_websocket_origin or config.allow_websocket_origin:
        if has_wildcard(entry):
            log.warning("Websocket origin %r admits many hosts; list exact hosts to restrict access", entry)
    if config.ssl_certfile:
        log.info("Serving over TLS (certificate %s)", config.ssl_certfile)
    if config.show:
        _show(config, server.app_urls())
    if config.num_procs > 1:
        return _serve_workers(config, apps, server.bind())
    log.info("Serving with process id: %d", os.getpid())
    try:
        server.run()
    except AppLoadError as exc:  # --setup failed
        return fail(str(exc))
    return 0


def _serve_workers(config: Config, apps: dict[str, Any], sockets: list[Any]) -> int:
    from aperture.cli.workers import Supervisor, check_forking_available, private_directory
    from aperture.peers import WorkerGroup
    from aperture.server import Server
    from aperture.worker_loads import WorkerLoads

    try:
        check_forking_available()
    except ConfigError as exc:
        return fail(str(exc))

    # Workers sign owner hints with BOKEH_SECRET_KEY, or else with a key only they share, and reach
    # each other over Unix sockets in a directory only this user can enter.
    key = config.secret_key or secrets.token_bytes(32)
    directory = private_directory()
    loads = WorkerLoads(config.num_procs)  # shared by the forked workers: spreads connections over them
    on_exit = None
    if config.metrics:  # one scrape shows every worker: their metrics go to files in `directory`
        from aperture.operations import metrics_multiprocess

        metrics_multiprocess.prepare(directory)
        on_exit = metrics_multiprocess.worker_exited

    def work(number: int) -> None:
        log.info("Worker %d serving with process id: %d", number, os.getpid())
        workers = WorkerGroup(
            directory=directory, count=config.num_procs, number=number, key=key, loads=loads
        )
        Server(apps, config=config, sockets=sockets, workers=workers).run(install_signal_handlers=True)

    log.info("Supervising %d workers from process id: %d", config.num_procs, os.getpid())
    supervisor = Supervisor(
        config.num_procs,
        work,
        config.shutdown_timeout,
        restart_limit=config.worker_restart_limit,
        restart_window=config.worker_restart_window,
        directory=directory,
        on_exit=on_exit,
    )
    return supervisor.run()


def _show(config: Config, urls: list[str]) -> None:
    import webbrowser

    try:
        browser = webbrowser.get(config.browser) if config.browser else webbrowser
        for url in urls:
            browser.open_new_tab(url)
    except Exception as exc:  # a missing browser must not stop the server
        log.warning("--show: could not open a browser: %s", exc)

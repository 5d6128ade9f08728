"""Panel's start-up conveniences, with `panel serve`'s meaning: `--setup` and `--warm`.

* `--setup SCRIPT` runs a Python script once in every server process before it serves (in each
  worker with `--num-procs`), as a module of its own (`__name__` is `aperture_setup_module`,
  `__file__` the script's path): the place to load models, open connection pools or fill caches
  that every session then shares. A script that raises stops that process from serving.
* `--warm` builds each app's document once, after the apps' `on_server_loaded` hooks and before
  the first visitor is let in (requests wait meanwhile, as during the hooks), then destroys that
  session with its `on_session_destroyed` hooks: the apps' imports and module-level caches are
  warm, and no session is left behind. The build is a real session's (its hooks run, its request
  carries no arguments, headers or cookies); it is never put in the session store.
"""

from __future__ import annotations

import logging
import time
import types

from aperture.core import ServerCore
from aperture.errors import AppFailedError, AppLoadError
from aperture.security import tokens
from aperture.sessions.context import RequestData

log = logging.getLogger("aperture.server")

SETUP_MODULE_NAME = "aperture_setup_module"


def run_setup(path: str) -> types.ModuleType:
    """Run the `--setup` script; AppLoadError (one line) if it cannot be read or raises."""
    module = types.ModuleType(SETUP_MODULE_NAME)
    module.__file__ = path
    try:
        with open(path, encoding="utf-8") as script:
            source = script.read()
        code = compile(source, path, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError) as exc:
        raise AppLoadError(f"--setup {path}: {type(exc).__name__}: {exc}") from None
    started = time.perf_counter()
    try:
        exec(code, module.__dict__)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from a script end this start-up too
        log.error("--setup script %s raised", path, exc_info=True)
        raise AppLoadError(f"--setup {path} raised {type(exc).__name__}: {exc}") from None
    log.info("Ran --setup script %s in %.2f s", path, time.perf_counter() - started)
    return module


async def warm(core: ServerCore) -> None:
    """Build and discard one document per app (a start-up step, see `ServerCore.startup_steps`)."""
    cfg = core.config
    for route, registry in core.apps.items():
        started = time.perf_counter()
        session_id = tokens.generate_session_id(cfg.secret_key, cfg.sign_sessions)
        request = RequestData(arguments={}, cookies={}, headers={})
        try:
            session = await registry.get_or_create(
                session_id, request=request, token=None, payload={}, keep=False
            )
        except AppFailedError as failure:
            log.warning("--warm: app %s failed to build its document: %s", route, failure.summary)
            continue
        await registry.destroy(session)
        log.info("Warmed app %s in %.2f s", route, time.perf_counter() - started)

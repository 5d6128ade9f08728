"""Command-line app paths to Bokeh `Application`s, keyed by URL route.

A path is a `.py` script, an `.ipynb` notebook or a directory app; its route is
`/<name>`. Everything that can fail at start-up (missing file, syntax error, a hook
module that raises, even `sys.exit()`) fails here as an `AppLoadError` naming the path, before the
server binds a socket. Directory apps also get `request_handler.py` (its
`process_request`), which the reference documents but never loads.
"""

from __future__ import annotations

import glob as globbing
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bokeh.application import Application
from bokeh.application.handlers.directory import DirectoryHandler
from bokeh.application.handlers.function import FunctionHandler
from bokeh.application.handlers.handler import Handler
from bokeh.application.handlers.notebook import NotebookHandler
from bokeh.application.handlers.script import ScriptHandler
from bokeh.application.handlers.server_request_handler import ServerRequestHandler

from aperture.apps.guard import contained
from aperture.errors import AppLoadError

_ROUTE = re.compile(r"^/[^/]*$")


def expand_paths(paths: Iterable[str], use_glob: bool) -> list[str]:
    """Absolute app paths, glob-expanded when asked (a pattern matching nothing adds nothing)."""
    found: list[str] = []
    for path in paths:
        expanded = os.path.expanduser(path)
        if use_glob:
            found.extend(sorted(os.path.abspath(p) for p in globbing.glob(expanded)))
        else:
            found.append(os.path.abspath(expanded))
    return found


def route_for(path: str) -> str:
    """`apps/demo.py` -> `/demo`; `apps/dashboard/` -> `/dashboard`."""
    name = os.path.basename(path.rstrip(os.sep))
    for suffix in (".py", ".ipynb"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return "/" + name


def _handler_for(path: str, argv: list[str]) -> Handler:
    if not os.path.exists(path):
        raise AppLoadError(f"Path for the application does not exist: {path}")
    if os.path.isdir(path):
        return DirectoryHandler(filename=path, argv=argv)
    if path.endswith(".ipynb"):
        return NotebookHandler(filename=path, argv=argv)
    if path.endswith(".py"):
        return ScriptHandler(filename=path, argv=argv)
    raise AppLoadError(f"Expected a '.py' script, an '.ipynb' notebook or a directory, got: {path!r}")


def application_for_path(path: str, argv: Sequence[str] = ()) -> Application:
    """One Application for one path; raises AppLoadError with the reason."""
    try:
        with contained():  # hook modules run now; Bokeh traps only their Exceptions
            handler = _handler_for(path, list(argv))
            if handler.failed:
                raise AppLoadError(f"Error loading {path}:\n\n{handler.error}\n{handler.error_detail}")
            app = Application(handler)
            request_hook = os.path.join(path, "request_handler.py")
            if os.path.isdir(path) and os.path.exists(request_hook):
                app.add(RequestHook(request_hook, argv))
    except AppLoadError:
        raise
    except Exception as exc:
        raise AppLoadError(f"Error loading {path}: {exc}") from exc
    return app


class RequestHook(Handler):  # type: ignore[misc]
    """A directory app's `request_handler.py`: contributes `process_request`, builds nothing."""

    def __init__(self, path: str, argv: Sequence[str]) -> None:
        super().__init__()
        self._hooks = ServerRequestHandler(filename=path, argv=list(argv))
        if self._hooks.failed:
            raise AppLoadError(f"Error loading {path}:\n\n{self._hooks.error}\n{self._hooks.error_detail}")

    def modify_document(self, doc: Any) -> None:
        pass

    def process_request(self, request: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._hooks.process_request(request)
        return result


def applications_for_paths(
    paths: Sequence[str], argv: Sequence[str], use_glob: bool
) -> dict[str, Application]:
    """Route -> Application for every positional path; no paths serves an empty app at `/`."""
    expanded = expand_paths(paths, use_glob)
    if not expanded:
        return {"/": Application()}
    apps: dict[str, Application] = {}
    for path in expanded:
        apps[route_for(path)] = application_for_path(path, argv)
    return apps


AppSpec = Application | Callable[[Any], None]


def applications_for_objects(apps: Mapping[str, AppSpec] | AppSpec) -> dict[str, Application]:
    """The library form: a route mapping, a single Application or a `make_doc(doc)` function."""
    mapping: Mapping[str, AppSpec] = apps if isinstance(apps, Mapping) else {"/": apps}
    result: dict[str, Application] = {}
    for route, spec in mapping.items():
        if not _ROUTE.match(route):
            raise AppLoadError(f"App routes look like '/name', got {route!r}")
        if isinstance(spec, Application):
            result[route] = spec
        elif callable(spec):
            result[route] = Application(FunctionHandler(spec, trap_exceptions=True))
        else:
            raise AppLoadError(f"App for {route!r} must be an Application or a function taking a document")
    return result

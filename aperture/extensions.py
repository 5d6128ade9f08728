"""Which directory holds the assets of the BokehJS extension a URL names (`P/static/extensions/<name>/`).

A name is looked up first in Bokeh's own registry, `bokeh.embed.bundle.extension_dirs`, read
afresh on every lookup: Bokeh fills it while it computes a page's resources and packages such as
Panel fill it when imported, so an extension an app imports lazily, at session time, is found
from then on, and a directory Bokeh registered is always the one its page URLs point into. A name
Bokeh has not registered in this process is then looked for among the installed packages,
*without importing anything*: a top-level package holding a `bokeh.ext.json` is an extension,
and its assets are where Bokeh would register them on first use (beside the file `package.json`
names as `module` or `main`, else `dist/`). That is what lets every `--num-procs` worker, and
every instance behind a balancer, serve Panel's assets although only the process that ran the
app has imported Panel. Only Python identifiers are looked up (a dotted name would import its
parent); a discovered directory must lie inside its package; and nothing is remembered about a
name that is no extension.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from bokeh.embed.bundle import extension_dirs

MARKER = "bokeh.ext.json"


def registered_dir(name: str) -> Path | None:
    """The artifacts directory Bokeh (or the package itself) registered for `name` in this process."""
    found = extension_dirs.get(name)
    return None if found is None else Path(found)


def installed_dir(name: str) -> Path | None:
    """The artifacts directory of the installed, possibly never imported, extension `name`."""
    if not name.isidentifier():
        return None
    try:
        spec = importlib.util.find_spec(name)
    except Exception:  # finders on sys.meta_path belong to third parties: any error means "not found"
        return None
    if spec is None or spec.origin is None or not spec.submodule_search_locations:
        return None  # extensions are regular packages, as Bokeh reads `module.__file__`'s directory
    package = Path(os.path.abspath(spec.origin)).parent  # as Bokeh: `Path(module.__file__).absolute()`
    if not (package / MARKER).is_file():
        return None
    artifacts = _artifacts_dir(name, package)
    if artifacts is None:
        return None
    real_package = os.path.realpath(package)
    if os.path.commonpath([os.path.realpath(artifacts), real_package]) != real_package:
        return None  # a package.json pointing out of its package is honoured only once Bokeh registers it
    return artifacts


def _artifacts_dir(name: str, package: Path) -> Path | None:
    """Where Bokeh's bundling would register the package's assets (`_bundle_extensions`' rules)."""
    try:
        pkg = json.loads((package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pkg = None
    if isinstance(pkg, dict):
        if not isinstance(pkg.get("name"), str):
            return None  # Bokeh refuses such a package.json
        main = pkg.get("module", pkg.get("main"))
        if isinstance(main, str):
            return (package / os.path.normpath(main)).parent
        return package / "dist"
    dist = package / "dist"
    if (dist / f"{name}.min.js").is_file() or (dist / f"{name}.js").is_file():
        return dist
    return None

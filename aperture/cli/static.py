"""`aperture static`: print the directory holding the BokehJS assets (for a proxy alias).

The directory holds BokehJS only. Extensions' assets (`/static/extensions/<name>/`, Panel's among
them) live in the packages that ship them and are found at run time among the packages installed
where Aperture runs, so a proxy that aliases `/static/` to this directory must keep passing
`/static/extensions/` to Aperture, which serves them with the same gzip and caching.
"""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = (
    "Print the directory of the BokehJS assets, e.g. for an nginx `alias` of /static/. It does not"
    " hold the assets of BokehJS extensions (Panel and other packages shipping a Bokeh extension):"
    " keep proxying <prefix>/static/extensions/ to Aperture."
)


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "static",
        help="Print the directory of the BokehJS assets served under /static/.",
        description=DESCRIPTION,
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aperture.pages import STATIC_DIR

    print(STATIC_DIR)
    return 0

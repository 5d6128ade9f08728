"""`aperture static`: print the directory holding the BokehJS assets (for a proxy alias)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "static",
        help="Print the directory of the BokehJS assets served under /static/.",
        description="Print the directory of the BokehJS assets, e.g. for an nginx `alias`.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aperture.pages import STATIC_DIR

    print(STATIC_DIR)
    return 0

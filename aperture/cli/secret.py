"""`aperture secret`: print a new key for BOKEH_SECRET_KEY."""

from __future__ import annotations

import argparse
from typing import Any

from aperture.security.tokens import generate_secret_key


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "secret",
        help="Print a new secret key for signing session ids (BOKEH_SECRET_KEY).",
        description="Print a new 44-character secret key, suitable for BOKEH_SECRET_KEY.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(generate_secret_key())
    return 0

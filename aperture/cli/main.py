"""Entry point of the `aperture` command and of `python -m aperture`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aperture import __version__
from aperture.cli import secret, serve, static


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aperture",
        description="Serve Bokeh apps: a drop-in replacement for `bokeh serve`.",
    )
    parser.add_argument("-v", "--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.add_parser(commands)
    secret.add_parser(commands)
    static.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("aperture: error: choose a command: serve, secret or static", file=sys.stderr)
        return 2
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

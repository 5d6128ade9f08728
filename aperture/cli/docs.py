"""Print docs/cli.md: the command-line reference, generated from `--help`.

Run with `python -m aperture.cli.docs > docs/cli.md` (or `make docs`); a test
fails when the committed file differs from what this prints.
"""

from __future__ import annotations

import os
import sys

from aperture.options import SETTINGS


def _help_text(argv: list[str]) -> str:
    from aperture.cli.main import build_parser

    parser = build_parser()
    if not argv:
        return parser.format_help()
    action = next(a for a in parser._actions if a.dest == "command")
    sub = action.choices[argv[0]]  # type: ignore[index]
    text: str = sub.format_help()
    return text


def render() -> str:
    os.environ["COLUMNS"] = "100"  # help wraps by terminal width; pin it for a stable file
    parts = [
        "# Command-line reference",
        "",
        "Generated from `aperture --help` by `make docs`; do not edit by hand.",
        "",
    ]
    for argv, title in (
        ([], "aperture"),
        (["serve"], "aperture serve"),
        (["secret"], "aperture secret"),
        (["static"], "aperture static"),
    ):
        parts += [f"## `{title}`", "", "```", _help_text(argv).rstrip(), "```", ""]
    parts += ["## Environment variables", "", "| variable | flag |", "|---|---|"]
    for setting in SETTINGS:
        if setting.env:
            parts.append(f"| `{setting.env}` | `{setting.flags[0]}` |")
    extra = [
        ("BOKEH_DEFAULT_SERVER_PORT", "default of `--port`"),
        ("BOKEH_SECRET_KEY", "key for signed session ids and tokens"),
        ("BOKEH_RESOURCES", "where pages load BokehJS from (`server` by default)"),
        ("BOKEH_MINIFIED", "minified BokehJS (yes/no)"),
        ("BOKEH_LOG_LEVEL", "BokehJS log level in the browser"),
        ("BOKEH_DEV", "development defaults (yes/no)"),
    ]
    for name, meaning in extra:
        parts.append(f"| `{name}` | {meaning} |")
    parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())

"""Fill in the deployment templates under ``deploy/`` (nginx, Apache, systemd).

Placeholders are written ``@{name}`` (letters, digits, underscores). This is
``string.Template`` with ``@`` as the delimiter and only the braced form, so the
``$variables`` of nginx, Apache and systemd pass through untouched, and so does
any ``@`` that is not followed by ``{``. ``@@{`` gives a literal ``@{``.

Rendering is strict: every placeholder needs a value (``MissingValues``) and
every value must be used by the template (``UnusedValues``), so a typo never
ends up in a config. Each template lists its placeholders in its header comment.

Command line::

    python -m deploy.render nginx/basic.conf listen=80 backend=127.0.0.1:5100 \\
        nginx_user=www-data > /etc/nginx/aperture.conf
    python -m deploy.render --list apache/balancer.conf     # the placeholders it needs

Template names are paths relative to this directory (or any path to a file).
From Python::

    from deploy.render import render, render_to
    text = render("nginx/basic.conf", listen="127.0.0.1:8080", backend="127.0.0.1:5100", nginx_user="www-data")
"""

from __future__ import annotations

import argparse
import os
import re
import string
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent
TEMPLATE_SUFFIXES = (".conf", ".service", ".env")


class ConfigTemplate(string.Template):
    """``string.Template`` that only knows ``@{name}`` (and ``@@{`` for a literal ``@{``)."""

    delimiter = "@"
    pattern = r"""
        @(?:
            (?P<escaped>@)(?=\{)                    # @@{  -> a literal @{
          | \{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}  # @{name}
          | (?P<named>(?!))                         # no unbraced form: @name stays as it is
          | (?P<invalid>\{)                         # @{ not followed by name}
        )
    """


class TemplateError(ValueError):
    """A template cannot be rendered with the values given."""


class MissingValues(TemplateError):
    def __init__(self, template: str, names: Iterable[str]) -> None:
        self.names = sorted(names)
        super().__init__(f"{template}: no value for {', '.join(self.names)}")


class UnusedValues(TemplateError):
    def __init__(self, template: str, names: Iterable[str]) -> None:
        self.names = sorted(names)
        super().__init__(f"{template}: not a placeholder of this template: {', '.join(self.names)}")


def template_path(template: str | os.PathLike[str]) -> Path:
    """``template`` as a path: an existing file, else a name relative to ``deploy/``."""
    path = Path(template)
    if path.is_file():
        return path
    candidate = DEPLOY_DIR / path
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(f"no template {os.fspath(template)!r} (looked in {DEPLOY_DIR})")


def templates() -> list[Path]:
    """Every shipped template, relative to ``deploy/``."""
    found = [
        path.relative_to(DEPLOY_DIR)
        for path in DEPLOY_DIR.rglob("*")
        if path.is_file() and path.name.endswith(TEMPLATE_SUFFIXES)
    ]
    return sorted(found)


def placeholders(template: str | os.PathLike[str]) -> list[str]:
    """The names of the placeholders in a template file, sorted."""
    text = template_path(template).read_text(encoding="utf-8")
    return sorted(set(placeholders_in(text)))


def placeholders_in(text: str) -> list[str]:
    names = ConfigTemplate(text).get_identifiers()
    return sorted(set(names))


def render_text(text: str, values: Mapping[str, object], *, name: str = "<template>") -> str:
    """Substitute ``values`` into template ``text`` (strict: nothing missing, nothing unused)."""
    template = ConfigTemplate(text)
    try:
        wanted = set(template.get_identifiers())
    except ValueError as exc:
        raise TemplateError(f"{name}: {exc}") from None
    given = {key: str(value) for key, value in values.items()}
    missing = wanted - given.keys()
    if missing:
        raise MissingValues(name, missing)
    unused = given.keys() - wanted
    if unused:
        raise UnusedValues(name, unused)
    try:
        return template.substitute(given)
    except ValueError as exc:  # "@{" not followed by "name}"
        raise TemplateError(f"{name}: {exc}") from None


def render(template: str | os.PathLike[str], values: Mapping[str, object] | None = None, **kw: object) -> str:
    """Render a template file with ``values`` and/or keyword values."""
    path = template_path(template)
    merged = {**(values or {}), **kw}
    return render_text(path.read_text(encoding="utf-8"), merged, name=str(template))


def render_to(
    template: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    values: Mapping[str, object] | None = None,
    **kw: object,
) -> Path:
    """Render a template into ``destination`` (parent directories are created); return its path."""
    text = render(template, values, **kw)
    out = Path(destination)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


def _parse_values(pairs: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        match = _ASSIGNMENT.match(pair)
        if not match:
            raise TemplateError(f"expected name=value, got {pair!r}")
        values[match.group(1)] = match.group(2)
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.render",
        description="Render an Aperture deployment template (placeholders are written @{name}).",
    )
    parser.add_argument("template", nargs="?", help="e.g. nginx/basic.conf (relative to deploy/) or a path")
    parser.add_argument("values", nargs="*", metavar="NAME=VALUE", help="a value for each placeholder")
    parser.add_argument("-o", "--output", help="write here instead of to stdout")
    parser.add_argument("--list", action="store_true", help="print the template's placeholders and exit")
    parser.add_argument("--templates", action="store_true", help="print the shipped templates and exit")
    args = parser.parse_intermixed_args(argv)
    try:
        if args.templates:
            for path in templates():
                print(path.as_posix())
            return 0
        if not args.template:
            parser.error("a template is required")
        if args.list:
            for name in placeholders(args.template):
                print(name)
            return 0
        values = _parse_values(args.values)
        if args.output:
            render_to(args.template, args.output, values)
        else:
            sys.stdout.write(render(args.template, values))
    except (TemplateError, FileNotFoundError) as exc:
        print(f"render: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

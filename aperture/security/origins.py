"""Which websocket origins are allowed: Tornado 6.6's same-origin shortcuts, then Bokeh's allowlist.

Allowlist entries are `*` or `host:port` after `parse_allowlist` (a bare `host` means port 80), but
raw `BOKEH_ALLOW_WS_ORIGIN` entries may also be given as they are (a portless entry then matches any
port). An origin is reduced to its lower-cased network location, so the scheme is ignored and a
portless origin (also `https://` ones) counts as port 80. A pattern matches exactly, or label by
label where `*` stands for one label (counts must agree); a host of `*` matches any host, a port
of `*` any port. `websocket_origin_allowed` is the whole decision for an upgrade request. Nothing
here raises on peer input: an origin that cannot be parsed is simply not allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlparse, urlsplit

__all__ = ["has_wildcard", "origin_allowed", "parse_allowlist", "websocket_origin_allowed"]

_SAME_ORIGIN_FETCH_SITES = ("same-origin", "none")


def parse_allowlist(entries: Iterable[str]) -> tuple[str, ...]:
    """Normalise `--allow-websocket-origin` values; `ValueError` with Bokeh's message if one is bad.

    `*` stays, `name` becomes `name:80`, `name:port` stays as written (the port must parse as an
    int). No entries give an empty tuple: the `localhost:<port>` default is the caller's to add.
    """
    allowlist: list[str] = []
    for entry in entries:
        if entry == "*":
            allowlist.append(entry)
            continue
        parts = entry.split(":")
        if len(parts) > 2:
            raise ValueError(f"Invalid host value: {entry}")
        if len(parts) == 2:
            # the reference checks the port before the name, which decides the message for ":"
            try:
                int(parts[1])
            except ValueError:
                raise ValueError(f"Invalid port in host value: {entry}") from None
        if not parts[0]:
            raise ValueError("Empty host value")
        allowlist.append(entry if len(parts) == 2 else f"{entry}:80")
    return tuple(allowlist)


def has_wildcard(entry: str) -> bool:
    """True if the entry would admit more than one host or port (worth a start-up warning)."""
    return "*" in entry


def _match_pattern(host: str, pattern: str) -> bool:
    host_name, _, host_port = host.rpartition(":")
    pattern_name, pattern_port = pattern, "*"
    if ":" in pattern:
        pattern_name, _, pattern_port = pattern.rpartition(":")
    if pattern_port != "*" and pattern_port != host_port:
        return False
    if pattern_name == "*":
        return True
    host_labels = host_name.split(".")
    pattern_labels = pattern_name.split(".")
    if len(host_labels) != len(pattern_labels):
        return False
    return all(p in ("*", h) for h, p in zip(host_labels, pattern_labels, strict=True))


def origin_allowed(origin: str, allowlist: Sequence[str]) -> bool:
    """Bokeh's allowlist check of an `Origin` header value (no same-origin shortcuts)."""
    try:
        host = urlparse(origin).netloc.lower()
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False
    if ":" not in host:
        host += ":80"
    if host in allowlist:
        return True
    return any(_match_pattern(host, pattern) for pattern in allowlist)


def _origin_matches_host(origin: str, host: str | None) -> bool:
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:
        return False
    return netloc == (host or "").lower()


def websocket_origin_allowed(
    *, origin: str | None, host: str | None, sec_fetch_site: str | None, allowlist: Sequence[str]
) -> bool:
    """The full decision for a websocket upgrade, from its raw `Origin`, `Host`, `Sec-Fetch-Site`.

    `Sec-Fetch-Site: same-origin` or `none` is allowed outright. Without that header, requests
    without an `Origin` (non-browser clients) and requests whose origin's network location equals
    the `Host` header are allowed. Everything else needs an `Origin` the allowlist admits.
    """
    if sec_fetch_site in _SAME_ORIGIN_FETCH_SITES:
        return True
    if sec_fetch_site is None:
        if origin is None:
            return True
        return _origin_matches_host(origin, host) or origin_allowed(origin, allowlist)
    # same-site, cross-site or anything else: only the allowlist decides, and it needs an origin
    if not origin:
        return False
    return origin_allowed(origin, allowlist)

"""Owner hints: which process of the deployment built a session, signed so only it can say so.

A token minted for a page may carry an owner hint naming the process that built the session, so a
websocket that lands elsewhere can be relayed there instead of running the app again. The hint is
`"<instance>|<worker>"`: `instance` is a `HOST:PORT` the deployment advertises (empty when the
server is a single instance) and `worker` the number of a `--num-procs` worker (empty without
workers). It travels with a signature, `sign_text(key, "<route>|<session id>|<hint>")`, made with a
key only the deployment holds, so a hint cannot be moved to another app or session or altered.

Invariant: a hint is only believed after `verify_hint` checked its signature and `parse_hint`
accepted its text; the parser takes nothing but an IP literal or a DNS name, a port and a number,
so nothing a client sends can put a path, query, user-info or scheme into a relay URL.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from aperture.security.signing import sign_text, signature_matches

__all__ = [
    "MAX_WORKERS",
    "OwnerHint",
    "format_hint",
    "parse_hint",
    "parse_instance",
    "sign_hint",
    "verify_hint",
]

MAX_WORKERS = 4096
MAX_HINT_LENGTH = 300
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_WORKER = re.compile(r"0|[1-9][0-9]{0,3}")


@dataclass(frozen=True)
class OwnerHint:
    """Where a session lives: an advertised instance (`HOST:PORT`) and/or a worker number."""

    instance: str | None = None
    worker: int | None = None


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        if "%" in host:  # a zone id names an interface, not a peer
            return False
        try:
            return ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            return False
    if len(host) > 253 or not host.isascii():
        return False
    labels = host.split(".")
    if all(label.isdigit() for label in labels):  # looks numeric: must be a real IPv4 address
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return all(_LABEL.fullmatch(label) for label in labels)


def parse_instance(text: str) -> str:
    """`text` if it is exactly `HOST:PORT` (IPv4, `[IPv6]` or a DNS name; port 1-65535), else ValueError."""
    host, colon, port = text.rpartition(":")
    if not colon or not _PORT.fullmatch(port) or int(port) > 65535 or not _valid_host(host):
        raise ValueError(f"not a HOST:PORT address: {text!r}")
    return text


def format_hint(hint: OwnerHint) -> str:
    """The hint's text; `parse_hint(format_hint(h)) == h` for every valid hint."""
    instance = "" if hint.instance is None else parse_instance(hint.instance)
    if hint.worker is not None and not 0 <= hint.worker < MAX_WORKERS:
        raise ValueError(f"worker number out of range: {hint.worker}")
    worker = "" if hint.worker is None else str(hint.worker)
    return f"{instance}|{worker}"


def parse_hint(text: object) -> OwnerHint:
    """The hint in `text`, or ValueError for anything that is not exactly a hint's form."""
    if not isinstance(text, str) or len(text) > MAX_HINT_LENGTH or text.count("|") != 1:
        raise ValueError("not an owner hint")
    instance, _, worker = text.partition("|")
    if worker and not _WORKER.fullmatch(worker):
        raise ValueError("bad worker number in owner hint")
    number = int(worker) if worker else None
    if number is not None and number >= MAX_WORKERS:
        raise ValueError("bad worker number in owner hint")
    if not instance and number is None:
        raise ValueError("empty owner hint")
    return OwnerHint(parse_instance(instance) if instance else None, number)


def _signed_text(route: str, session_id: str, hint_text: str) -> str:
    return f"{route}|{session_id}|{hint_text}"


def sign_hint(key: bytes, route: str, session_id: str, hint_text: str) -> str:
    """The signature that binds a hint's text to one app route and one session id."""
    return sign_text(key, _signed_text(route, session_id, hint_text))


def verify_hint(key: bytes, route: str, session_id: str, hint_text: object, signature: object) -> bool:
    """True if `signature` is this deployment's signature of `hint_text` for this route and session."""
    if not isinstance(hint_text, str) or not isinstance(signature, str):
        return False
    return signature_matches(key, _signed_text(route, session_id, hint_text), signature)

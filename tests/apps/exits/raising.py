"""How the exits app stops: `sys.exit()`, KeyboardInterrupt or a BaseException of its own."""

import sys


class AppAbort(BaseException):
    """A BaseException that is not an Exception, as some libraries define for 'stop now'."""


def stop(kind):
    if kind == "SystemExit":
        sys.exit(3)
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if kind == "AppAbort":
        raise AppAbort("the app aborted")
    raise ValueError(f"unknown kind {kind!r}")


def plan(arguments):
    """(the places `?at=` names, the kind `?kind=` names) of a request's arguments."""
    places = {a.decode() for a in arguments.get("at", [])}
    return places, arguments.get("kind", [b"SystemExit"])[-1].decode()


def wanted(arguments, place):
    """The kind to raise at `place` if the request's `?at=` asks for it, else None."""
    places, kind = plan(arguments)
    return kind if place in places else None


def hook_kind(place):
    """The kind to raise in a server-wide hook, from $EXITS_HOOKS like 'server_loaded:SystemExit'."""
    import os

    for item in os.environ.get("EXITS_HOOKS", "").split(","):
        name, _, kind = item.partition(":")
        if name == place:
            return kind
    return None

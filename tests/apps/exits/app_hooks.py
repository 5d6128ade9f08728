"""Lifecycle hooks that raise: per session by `?at=`, server-wide by $EXITS_HOOKS."""

import asyncio
import os

from raising import hook_kind, stop, wanted

EVENTS = os.environ.get("EXITS_EVENTS")


def record(line):
    if EVENTS:
        with open(EVENTS, "a") as f:
            f.write(line + "\n")


async def on_server_loaded(server_context):
    record("server_loaded")
    if kind := hook_kind("server_loaded"):
        await asyncio.sleep(0)
        stop(kind)


def on_server_unloaded(server_context):
    record("server_unloaded")
    if kind := hook_kind("server_unloaded"):
        stop(kind)


async def on_session_created(session_context):
    if kind := wanted(session_context.request.arguments, "session_created"):
        await asyncio.sleep(0)
        stop(kind)


def on_session_destroyed(session_context):
    if kind := wanted(session_context.request.arguments, "session_destroyed"):
        stop(kind)

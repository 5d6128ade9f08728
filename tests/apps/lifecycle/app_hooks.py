"""Lifecycle hooks that record themselves in $LIFECYCLE_EVENTS; `on_server_loaded` is async and
takes $LIFECYCLE_LOAD_SECONDS (default 0)."""

import asyncio
import os

EVENTS = os.environ.get("LIFECYCLE_EVENTS")


def record(line):
    if EVENTS:
        with open(EVENTS, "a") as f:
            f.write(f"{line}\n")


async def on_server_loaded(server_context):
    record("server-loaded-start")
    await asyncio.sleep(float(os.environ.get("LIFECYCLE_LOAD_SECONDS", "0")))
    record("server-loaded-done")


def on_session_destroyed(session_context):
    record(f"destroyed {session_context.id}")


def on_server_unloaded(server_context):
    record("server-unloaded")

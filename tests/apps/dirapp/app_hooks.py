import asyncio
import os

EVENTS = os.environ.get("DIRAPP_EVENTS")


def _record(line):
    if EVENTS:
        with open(EVENTS, "a") as f:
            f.write(line + "\n")


def on_server_loaded(server_context):
    _record("server_loaded")


async def on_session_created(session_context):
    await asyncio.sleep(0.01)
    args = session_context.request.arguments
    session_context.greeting = args.get("name", [b"stranger"])[0].decode()
    _record("session_created")


async def on_session_destroyed(session_context):
    await asyncio.sleep(0)
    _record(f"session_destroyed {session_context.destroyed}")


def on_server_unloaded(server_context):
    _record("server_unloaded")

"""Turns Python's cyclic garbage collector off in this server process, so that a session the
server does not free by reference counting stays visible to main.py's count; prints each
destroyed session so a test can wait for the reaping."""

import gc


def on_server_loaded(server_context):
    gc.disable()


def on_session_destroyed(session_context):
    print(f"gc-probe destroyed {session_context.id}", flush=True)

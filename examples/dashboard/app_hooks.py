"""Server and session hooks for the dashboard directory app.

``on_session_created`` runs before ``main.py`` for each new session, so what it
stores on the session context (``greeting``, ``session_number``) is there when
``main.py`` builds the page. The prints go to the server's stdout, where the
browser tests look for them.
"""

import html


def on_server_loaded(server_context):
    server_context.dashboard_sessions_created = 0
    print("dashboard: server loaded", flush=True)


def on_session_created(session_context):
    server_context = session_context.server_context
    count = getattr(server_context, "dashboard_sessions_created", 0) + 1
    server_context.dashboard_sessions_created = count
    session_context.session_number = count

    request = session_context.request
    names = request.arguments.get("name", []) if request is not None else []
    name = names[0].decode("utf-8", "replace") if names else "stranger"
    session_context.greeting = f"Hello, {html.escape(name)}!"
    print(f"dashboard: session {session_context.id} created", flush=True)


def on_session_destroyed(session_context):
    print(f"dashboard: session {session_context.id} destroyed", flush=True)

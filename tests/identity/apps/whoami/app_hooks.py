"""`on_session_created` sees the signed-in user too: one JSON line per session to a file.

The file is named by ``APERTURE_IDENTITY_HOOK_FILE``; without it the hook does nothing.
"""

import json
import os


def on_session_created(session_context):
    path = os.environ.get("APERTURE_IDENTITY_HOOK_FILE")
    if not path:
        return
    request = session_context.request
    line = {"session": session_context.id, "user": request.user, "claims": request.claims}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")

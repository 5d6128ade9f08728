"""A Flask site that embeds an Aperture app, with signed session ids and a tight CSP.

``/`` mints a signed session id with the secret it shares with the Aperture server and embeds
that session with ``server_session``; ``/document`` lets the server create the session and
embeds it with ``server_document``, passing ``?name=`` on as an app argument. Every page sends a
Content-Security-Policy that admits exactly what the embed needs: the inline embed tag (by
nonce), the ``blob:`` script it creates, BokehJS from the Aperture host, and HTTP plus websocket
connections to that host.

    export BOKEH_SECRET_KEY=$(aperture secret)
    BOKEH_SIGN_SESSIONS=yes aperture serve examples/flask_embed/bkapp.py \\
        --port 5006 --allow-websocket-origin=localhost:8000
    python examples/flask_embed/app.py --port 8000

then open http://localhost:8000/ (see README.md).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from urllib.parse import urlsplit

from flask import Flask, Response, render_template_string, request

from aperture.embed import server_document, server_session
from aperture.security.tokens import generate_session_id

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <link rel="icon" href="data:,">
  <title>{{ title }}</title>
</head>
<body>
  <h1>{{ title }}</h1>
  <p>Embedded from {{ bokeh_url }}. Also see <a href="/">server_session</a> and
     <a href="/document?name=Ada">server_document</a>.</p>
  {{ script | safe }}
</body>
</html>
"""


def content_security_policy(bokeh_url: str, nonce: str) -> str:
    """`script-src` and `connect-src` for the Aperture host, over http(s) and ws(s)."""
    parts = urlsplit(bokeh_url)
    http_origin = f"{parts.scheme}://{parts.netloc}"
    ws_origin = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"
    return (
        f"script-src 'self' 'nonce-{nonce}' blob: {http_origin}; connect-src 'self' {http_origin} {ws_origin}"
    )


def with_nonce(tag: str, nonce: str) -> str:
    """The embed tag with a CSP nonce, so the policy needs no 'unsafe-inline'."""
    return tag.replace("<script ", f'<script nonce="{nonce}" ', 1)


def create_app(bokeh_url: str, secret_key: str) -> Flask:
    app = Flask(__name__)
    secret = secret_key.encode("utf-8")

    def page(title: str, tag: str) -> Response:
        nonce = secrets.token_urlsafe(16)
        html = render_template_string(PAGE, title=title, bokeh_url=bokeh_url, script=with_nonce(tag, nonce))
        response = Response(html, mimetype="text/html")
        response.headers["Content-Security-Policy"] = content_security_policy(bokeh_url, nonce)
        return response

    @app.get("/")
    def session_page() -> Response:
        # A fresh signed id per page view: the Aperture server accepts it because the key is shared.
        session_id = generate_session_id(secret, signed=True)
        return page("Flask + server_session", server_session(url=bokeh_url, session_id=session_id))

    @app.get("/document")
    def document_page() -> Response:
        name = request.args.get("name", "visitor")
        return page("Flask + server_document", server_document(bokeh_url, arguments={"name": name}))

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--address", default="localhost", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--bokeh-url", default="http://localhost:5006/bkapp", help="URL of the app on the Aperture server"
    )
    args = parser.parse_args()
    secret_key = os.environ.get("BOKEH_SECRET_KEY")
    if not secret_key:
        sys.exit("BOKEH_SECRET_KEY is not set: use the same key as the Aperture server (aperture secret)")
    create_app(args.bokeh_url, secret_key).run(host=args.address, port=args.port)


if __name__ == "__main__":
    main()

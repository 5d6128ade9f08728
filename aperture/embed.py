"""Script tags that embed a served app into another web page, as ``bokeh.embed`` does.

`server_document` embeds a new session of an app; `server_session` embeds one existing session
(typically a signed id the parent page minted with the server's `BOKEH_SECRET_KEY`). Both return
a ``<script id="<element id>">`` that fetches ``<url>/autoload.js`` with an ``XMLHttpRequest``
(``responseType = "blob"``, the given headers, ``withCredentials``) and runs the answer as a
``blob:`` script, which loads BokehJS and replaces the tag with the rendered app. Arguments,
defaults, ``ValueError`` cases and the autoload URL are those of Bokeh 3.9, so a page can switch
between the two freely; the one difference is that every value placed in the JavaScript (URL,
header names and values) is written as an escaped string literal, so no value can end the string
or the ``<script>`` element. Element ids are uuid4 strings whose first character is a letter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote_plus, urlparse

from bokeh.resources import DEFAULT_SERVER_HTTP_URL

if TYPE_CHECKING:
    from bokeh.model import Model

__all__ = ["server_document", "server_session"]

SESSION_ID_HEADER = "Bokeh-Session-Id"

_TAG = """<script id="{element_id}">
  (function() {{
    const xhr = new XMLHttpRequest();
    xhr.responseType = "blob";
    xhr.open("GET", {src}, true);
{request_headers}    xhr.withCredentials = {with_credentials};
    xhr.onload = function (event) {{
      const script = document.createElement("script");
      script.src = URL.createObjectURL(event.target.response);
      document.body.appendChild(script);
    }};
    xhr.send();
  }})();
</script>"""

# In a <script> element only "</script" and "<!--" are special, so "<" and ">" become JS escapes.
_HTML_UNSAFE = {ord("<"): "\\u003c", ord(">"): "\\u003e"}


def server_document(
    url: str = "default",
    relative_urls: bool = False,
    resources: Literal["default"] | None = "default",
    arguments: Mapping[str, object] | None = None,
    headers: Mapping[str, object] | None = None,
    with_credentials: bool = False,
) -> str:
    """A script tag that embeds a new session of the app at `url`.

    `url` is the app's http(s) URL (``"default"``: Bokeh's default server URL, normally
    ``http://localhost:5006``). With `relative_urls` the BokehJS assets and the websocket use
    paths relative to the parent page instead of `url`. `resources=None` leaves loading BokehJS
    to the parent page. `arguments` become query arguments of the request, hence
    ``session_context.request.arguments`` (keys starting with ``bokeh-`` are dropped). `headers`
    are sent with the autoload request; `with_credentials` sends cookies instead.

    Raises `ValueError` for a websocket URL, a `resources` other than ``"default"`` or None, and
    for `headers` together with `with_credentials`.
    """
    base_url = _clean_url(url)
    _check_credentials(headers, with_credentials)
    element_id = _element_id()
    src = _autoload_url(base_url, element_id, relative_urls, resources) + _query_arguments(arguments)
    return _script_tag(element_id, src, dict(headers or {}), with_credentials)


def server_session(
    model: Model | None = None,
    session_id: str | None = None,
    url: str = "default",
    relative_urls: bool = False,
    resources: Literal["default"] | None = "default",
    headers: Mapping[str, object] | None = None,
    with_credentials: bool = False,
) -> str:
    """A script tag that embeds the existing (or to-be-created) session `session_id` of `url`.

    The id travels in the ``Bokeh-Session-Id`` request header (after any `headers`, replacing one
    of that exact name), which makes the browser send a CORS preflight. With signed sessions it
    must be signed with the server's secret, e.g. by
    `aperture.security.tokens.generate_session_id(secret, signed=True)`. `model` is accepted for
    compatibility only: the whole document is always rendered. The other arguments are those of
    `server_document`.

    Raises `ValueError` when `session_id` is None, and in the cases `server_document` does.
    """
    if session_id is None:
        raise ValueError("Must supply a session_id")
    base_url = _clean_url(url)
    _check_credentials(headers, with_credentials)
    element_id = _element_id()
    src = _autoload_url(base_url, element_id, relative_urls, resources)
    request_headers = {**(headers or {}), SESSION_ID_HEADER: session_id}
    return _script_tag(element_id, src, request_headers, with_credentials)


def _clean_url(url: str) -> str:
    if url == "default":
        url = DEFAULT_SERVER_HTTP_URL
    if url.startswith("ws"):
        raise ValueError("url should be the http or https URL for the server, not the websocket URL")
    return url.rstrip("/")


def _check_credentials(headers: Mapping[str, object] | None, with_credentials: bool) -> None:
    if headers and with_credentials:
        raise ValueError("'headers' and 'with_credentials' are mutually exclusive")


def _autoload_url(
    base_url: str, element_id: str, relative_urls: bool, resources: Literal["default"] | None
) -> str:
    if resources not in ("default", None):
        raise ValueError("`resources` must be either 'default' or None.")
    # Values are not percent-encoded, exactly as Bokeh writes them, so both URLs stay identical.
    src = f"{base_url}/autoload.js?bokeh-autoload-element={element_id}"
    app_path = _app_path(base_url)
    if app_path != "/":
        src += f"&bokeh-app-path={app_path}"
    if not relative_urls:
        src += f"&bokeh-absolute-url={base_url}"
    if resources is None:
        src += "&resources=none"
    return src


def _app_path(base_url: str) -> str:
    path = urlparse(base_url).path.rstrip("/")
    return path if path.startswith("/") else "/" + path


def _query_arguments(arguments: Mapping[str, object] | None) -> str:
    # `bokeh-*` names are the server's own query arguments; a caller may not override them.
    return "".join(
        f"&{quote_plus(str(name))}={quote_plus(str(value))}"
        for name, value in (arguments or {}).items()
        if not str(name).startswith("bokeh-")
    )


def _element_id() -> str:
    """A uuid4 usable as a CSS id selector: its first character must be a letter."""
    for _ in range(100):
        candidate = str(uuid.uuid4())
        if candidate[0].isalpha():
            return candidate
    return f"bk-{uuid.uuid4()}"


def _js_string(value: object) -> str:
    return json.dumps(str(value)).translate(_HTML_UNSAFE)


def _script_tag(element_id: str, src: str, headers: Mapping[str, object], with_credentials: bool) -> str:
    request_headers = "".join(
        f"    xhr.setRequestHeader({_js_string(name)}, {_js_string(value)});\n"
        for name, value in headers.items()
    )
    return _TAG.format(
        element_id=element_id,
        src=_js_string(src),
        request_headers=request_headers,
        with_credentials="true" if with_credentials else "false",
    )

"""A demo auth module for ``aperture serve --auth-module`` (and ``bokeh serve``).

Users log in through a small HTML form; a successful login stores the user name in
a *secure* (signed) cookie ``user``, so the server needs ``--cookie-secret``. The
form carries Tornado's XSRF token, so serve with ``--enable-xsrf-cookies``::

    aperture serve examples/auth/app.py --auth-module examples/auth/auth.py \\
        --cookie-secret "$(aperture secret)" --enable-xsrf-cookies

This is a demo, not a user database: the only account is ``demo`` / ``demo``,
hard-coded below. Replace ``check_password`` with a real check (or your identity
provider) before using anything like this for real.
"""

from __future__ import annotations

import hmac

from tornado.web import RequestHandler

# The demo's only account. A real deployment checks a password hash or asks an identity provider.
DEMO_USERS = {"demo": "demo"}
COOKIE = "user"
COOKIE_DAYS = 1

login_url = "/login"
logout_url = "/logout"


def get_user(request_handler: RequestHandler) -> str | None:
    """The logged-in user: the name in the signed ``user`` cookie, or None."""
    value = request_handler.get_secure_cookie(COOKIE, max_age_days=COOKIE_DAYS)
    return value.decode("utf-8") if value else None


def check_password(username: str, password: str) -> bool:
    expected = DEMO_USERS.get(username)
    # Compare in constant time, and compare something even for unknown users.
    return hmac.compare_digest(password.encode(), (expected or "\0").encode()) and expected is not None


def _prefix(handler: RequestHandler, route: str) -> str:
    """The server's ``--prefix``, recovered from where this handler is mounted."""
    path = handler.request.path
    return path[: -len(route)] if path.endswith(route) else ""


def _safe_next(handler: RequestHandler) -> str:
    """Where to go after logging in: ``next`` when it is a local path, else the server root."""
    target = handler.get_argument("next", "")
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return _prefix(handler, login_url) + "/"


class LoginHandler(RequestHandler):
    """``GET`` shows the form; ``POST`` checks the credentials and sets the cookie."""

    def get(self) -> None:
        self._form(error="")

    def post(self) -> None:
        username = self.get_argument("username", "")
        password = self.get_argument("password", "")
        if not check_password(username, password):
            self.set_status(403)
            self._form(error="Unknown user name or wrong password.")
            return
        self.set_secure_cookie(
            COOKIE,
            username,
            expires_days=COOKIE_DAYS,
            httponly=True,
            samesite="Lax",
            secure=self.request.protocol == "https",
        )
        self.redirect(_safe_next(self))

    def _form(self, error: str) -> None:
        # Tornado looks for the template next to this file.
        self.render("login.html", error=error, next=_safe_next(self), action=self.request.path)


class LogoutHandler(RequestHandler):
    """Forget the user and go back to the login form."""

    def get(self) -> None:
        self.clear_cookie(COOKIE)
        self.redirect(_prefix(self, logout_url) + login_url)

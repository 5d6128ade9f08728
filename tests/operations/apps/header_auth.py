"""A test auth module: the user is the `X-Test-User` header (a real one would check a cookie)."""

login_url = "/login"


def get_user(request_handler):
    return request_handler.request.headers.get("X-Test-User") or None

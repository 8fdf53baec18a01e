"""Who may read the UI, and what the browser may run.

Without a token (loopback only, see settings) everything is open. With one, ``/api``
wants ``Authorization: Bearer <token>``, pages want the session cookie the login form
sets; the cookie holds an HMAC of the token, never the token. Every response carries a
Content-Security-Policy that allows scripts and styles from this origin only: no inline
script, no inline style attribute (htmx's own indicator style is switched off in its
config), no framing.
"""

import hashlib
import hmac
from urllib.parse import quote

from pydantic import SecretStr

SESSION_COOKIE = "callqual_session"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: A standalone SVG export carries its own <style>; nothing else
SVG_CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: Paths anyone may fetch: the login form, its assets, the health check
OPEN_PREFIXES = ("/login", "/static/", "/healthz")


def session_value(token: SecretStr) -> str:
    return hmac.new(token.get_secret_value().encode(), b"callqual-ui-session", hashlib.sha256).hexdigest()


def token_matches(token: SecretStr, offered: str) -> bool:
    return hmac.compare_digest(token.get_secret_value().encode(), offered.encode())


def session_matches(token: SecretStr, cookie: str | None) -> bool:
    return cookie is not None and hmac.compare_digest(session_value(token), cookie)


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def is_open(path: str) -> bool:
    return path == "/login" or path.startswith(OPEN_PREFIXES)


def login_redirect(path: str) -> str:
    """The login form, told where to come back to (a local path only)."""
    return "/login?next=" + quote(
        path if path.startswith("/") and not path.startswith("//") else "/", safe="/"
    )

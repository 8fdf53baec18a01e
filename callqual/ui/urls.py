"""The UI's links, built in one place (pure): a Call-ID may hold any character a URL must escape."""

from urllib.parse import quote


def call_url(call_id: str, suffix: str = "") -> str:
    """A call's page (or an export of it, with ``suffix``): the Call-ID escaped as one path segment."""
    return f"/calls/{quote(call_id, safe='@:+')}{suffix}"

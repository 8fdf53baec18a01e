"""Binding rules, the token (bearer for the API, login form and cookie for pages), headers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from callqual.ui.app import create_app
from callqual.ui.settings import UiSettings
from tests.ui.ui_server import serving

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def guarded(store_url: str, store_engine: Engine) -> Iterator[str]:
    settings = UiSettings(store_url=store_url, token=TOKEN, overview_hours=None)  # type: ignore[arg-type]
    with serving(create_app(settings, store_engine)) as url:
        yield url


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "ui.example.net"])
def test_off_loopback_without_a_token_is_refused(host: str) -> None:
    with pytest.raises(ValidationError, match="needs CALLQUAL_UI_TOKEN"):
        UiSettings(store_url="sqlite://", host=host)
    assert UiSettings(store_url="sqlite://", host=host, token=TOKEN).host == host  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert UiSettings(store_url="sqlite://", host=host).token is None


def test_cli_refuses_to_start_off_loopback_without_a_token(store_url: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run(
        [sys.executable, "-m", "callqual", "ui", "--store", store_url, "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert "needs CALLQUAL_UI_TOKEN" in r.stderr
    assert "Traceback" not in r.stderr


def test_api_wants_the_bearer_token(guarded: str) -> None:
    assert httpx.get(guarded + "/api/calls").status_code == 401
    assert httpx.get(guarded + "/api/calls", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.get(guarded + "/api/calls", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["total"] > 0
    assert httpx.get(guarded + "/healthz").status_code == 200  # open, for probes


def test_pages_go_through_the_login_form(guarded: str) -> None:
    with httpx.Client(base_url=guarded) as browser:
        first = browser.get("/calls?category=ok")
        assert first.status_code == 303
        assert first.headers["location"] == "/login?next=/calls"
        assert browser.get("/static/app.css").status_code == 200
        form = browser.get(first.headers["location"])
        assert form.status_code == 200 and 'name="token"' in form.text
        wrong = browser.post("/login", data={"token": "nope", "next": "/calls"})
        assert wrong.status_code == 303 and "failed=1" in wrong.headers["location"]
        assert "callqual_session" not in browser.cookies
        right = browser.post("/login", data={"token": TOKEN, "next": "/calls"})
        assert right.status_code == 303 and right.headers["location"] == "/calls"
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        calls = browser.get("/calls")
        assert calls.status_code == 200 and 'action="/logout"' in calls.text
        assert browser.get("/api/calls").status_code == 200  # the session also opens the API
        offsite = browser.post("/login", data={"token": TOKEN, "next": "//evil.example"})
        assert offsite.headers["location"] == "/"
        out = browser.post("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert browser.get("/calls").status_code == 303  # the cookie is gone


def test_security_headers_on_every_response(guarded: str) -> None:
    for path in ["/login", "/healthz", "/api/calls", "/calls"]:
        r = httpx.get(guarded + path)
        assert "script-src 'self'" in r.headers["content-security-policy"], path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"

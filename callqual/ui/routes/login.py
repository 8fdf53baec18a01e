"""The login form: the token exchanged for a session cookie (only when a token is set)."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from callqual.ui import security
from callqual.ui.routes.common import render
from callqual.ui.settings import UiSettings

router = APIRouter(include_in_schema=False)


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/", failed: bool = False) -> Response:
    return render(request, "login.html", next=_safe_next(next), failed=failed)


@router.post("/login")
def login(request: Request, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/") -> Response:
    settings: UiSettings = request.app.state.settings
    if settings.token is None:
        return RedirectResponse(_safe_next(next), status_code=303)
    if not security.token_matches(settings.token, token):
        return RedirectResponse(security.login_redirect(_safe_next(next)) + "&failed=1", status_code=303)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        security.SESSION_COOKIE,
        security.session_value(settings.token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(security.SESSION_COOKIE)
    return response

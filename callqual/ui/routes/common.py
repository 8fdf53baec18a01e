"""What the routers share: the connection dependency, template rendering, the overview window."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from callqual.ui.settings import UiSettings
from callqual.ui.store_access import connection

Conn = Annotated[Connection, Depends(connection)]


def settings_of(request: Request) -> UiSettings:
    settings: UiSettings = request.app.state.settings
    return settings


def render(request: Request, template: str, **context: object) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(request, template, context)
    return response


def overview_window(request: Request) -> tuple[datetime, datetime]:
    """The overview's window: the last ``overview_hours`` up to now, or all stored time (None)."""
    hours = settings_of(request).overview_hours
    until = datetime.now(UTC)
    since = datetime(1970, 1, 1, tzinfo=UTC) if hours is None else until - timedelta(hours=hours)
    return since, until

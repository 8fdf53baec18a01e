"""Jinja2 set-up shared by the page routes: autoescaping on, a few formatting filters."""

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from callqual.ui.urls import call_url


def when(ts: datetime | None) -> str:
    return "" if ts is None else ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def number(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def percent(ratio: float | None) -> str:
    return "" if ratio is None else f"{100 * ratio:.1f}%"


def with_query(params: dict[str, Any], **changes: Any) -> str:
    """The current filters with some changed (pagination links, facet links)."""
    merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
    return "?" + urlencode(merged)


def make_templates() -> Jinja2Templates:
    env = Environment(
        loader=PackageLoader("callqual.ui", "templates"),
        autoescape=select_autoescape(["html", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(call_url=call_url, when=when, number=number, percent=percent)
    env.globals.update(with_query=with_query)
    return Jinja2Templates(env=env)

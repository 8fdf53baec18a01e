"""``callqual calls``: search the call store (problem calls first, then newest).

Exit codes: 0 - searched (even when nothing matched), 2 - bad arguments, 5 - the store
could not be opened or read.
"""

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:
    from callqual.store.views import CallPage

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STORE = 5

#: Table columns: header, width, how to show a row.
_COLUMNS: list[tuple[str, int, str]] = [
    ("start (UTC)", 19, "start_ts"),
    ("from", 16, "from_user"),
    ("to", 16, "to_user"),
    ("state", 11, "state"),
    ("final", 5, "final_status"),
    ("category", 14, "category"),
    ("MOS", 4, "worst_mos"),
    ("problems", 30, "problems"),
    ("Call-ID", 0, "call_id"),
]


def _utc(text: str) -> datetime:
    """ISO 8601; without an offset the time is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "calls",
        help="search the call store by time, number, Call-ID, IP, category, rule, MOS",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--store", metavar="URL", help="sqlite:///calls.db or postgresql://... (CALLQUAL_STORE_URL)"
    )
    p.add_argument(
        "--start", type=_utc, help="calls started at or after this time (ISO 8601, UTC by default)"
    )
    p.add_argument("--end", type=_utc, help="calls started before this time")
    p.add_argument("--user", help="caller or callee number/user; a trailing * matches a prefix")
    p.add_argument("--call-id")
    p.add_argument("--ip", help="caller or callee signalling address")
    p.add_argument("--category", help="ok, poor_quality, one_way, no_media, failed_*, suspicious")
    p.add_argument("--rule", help="calls with an alert of this rule")
    p.add_argument("--mos-below", type=float, help="calls whose worst stream MOS is below this")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=run)


def _cell(row: Any, attribute: str) -> str:
    value = getattr(row, attribute)
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return ",".join(value) or "-"
    return str(value)


def render_table(page: "CallPage") -> str:
    lines = [" ".join(h.ljust(w) if w else h for h, w, _ in _COLUMNS)]
    for row in page.rows:
        cells = [_cell(row, attr) for _, _, attr in _COLUMNS]
        widths = [w for _, w, _ in _COLUMNS]
        lines.append(" ".join(c[:w].ljust(w) if w else c for c, w in zip(cells, widths, strict=True)))
    facets = ", ".join(f"{k} {v}" for k, v in page.facets.items())
    lines.append(f"{len(page.rows)} of {page.total} calls" + (f" ({facets})" if facets else ""))
    return "\n".join(lines) + "\n"


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def run(args: argparse.Namespace) -> int:
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class CallsSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="CALLQUAL_", frozen=True)
        store_url: SecretStr | None = None

    url = SecretStr(args.store) if args.store else CallsSettings().store_url
    if url is None:
        print("callqual: calls needs --store URL (or CALLQUAL_STORE_URL)", file=sys.stderr)
        return EXIT_USAGE
    if args.limit < 1 or args.offset < 0:
        print("callqual: --limit must be >= 1 and --offset >= 0", file=sys.stderr)
        return EXIT_USAGE

    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from callqual.store.engine import StoreUrlError, open_store
    from callqual.store.queries import CallFilter, search_calls

    query = CallFilter(
        start=args.start,
        end=args.end,
        user=args.user,
        call_id=args.call_id,
        ip=args.ip,
        category=args.category,
        rule=args.rule,
        mos_below=args.mos_below,
        limit=args.limit,
        offset=args.offset,
    )
    try:
        engine = open_store(url.get_secret_value())
    except (StoreUrlError, ArgumentError) as exc:
        print(f"callqual: --store: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        print(f"callqual: the store could not be opened: {_first_line(exc)}", file=sys.stderr)
        return EXIT_STORE
    try:
        with engine.connect() as conn:
            page = search_calls(conn, query)
    except SQLAlchemyError as exc:
        print(f"callqual: the store could not be read: {_first_line(exc)}", file=sys.stderr)
        return EXIT_STORE
    finally:
        engine.dispose()
    if args.format == "json":
        doc = {"total": page.total, "facets": page.facets, "rows": [asdict(r) for r in page.rows]}
        sys.stdout.write(json.dumps(doc, indent=2, default=_json_default) + "\n")
    else:
        sys.stdout.write(render_table(page))
    return EXIT_OK


def _first_line(exc: Exception) -> str:
    origin = getattr(exc, "orig", None) or exc
    text = str(origin).strip()
    return text.splitlines()[0] if text else type(origin).__name__

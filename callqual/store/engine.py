"""Open a call store by URL and bring its schema to the latest migration.

``sqlite:///calls.db`` needs nothing but the standard library; ``postgresql://...``
uses psycopg 3. Alembic's scripts ship inside the package, so an installed
``callqual`` can create and upgrade its own store.
"""

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class StoreUrlError(ValueError):
    """The URL names no engine the store supports."""


def engine_url(url: str) -> str:
    """``postgresql://`` -> the psycopg 3 driver; SQLite as given; anything else refused."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return url
    raise StoreUrlError(
        f"unsupported store URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # auto_vacuum only takes on a new file (before the first table): retention can then give
    # pages back with incremental_vacuum. WAL lets readers (the UI) run while the writer writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


#: Advisory lock key serialising migrations between store processes starting together ("cqmig")
MIGRATION_LOCK = 0x6371_6D69_67


def migrate(engine: Engine, revision: str = "head") -> None:
    """Run Alembic's migrations up to ``revision`` on ``engine``; on PostgreSQL one process at a
    time (the others then find the schema at ``revision`` and do nothing)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def open_store(url: str, *, migrate: bool = True) -> Engine:
    """An engine on the store at ``url``, migrated to head unless ``migrate=False``."""
    engine = create_engine(engine_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        _migrate(engine)
    return engine


_migrate = migrate

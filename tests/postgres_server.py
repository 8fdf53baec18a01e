"""A real PostgreSQL for the test session: Debian's binaries, a cluster in a temporary directory.

``initdb``/``pg_ctl`` refuse to run as root, so the cluster belongs to an unprivileged
user (``nobody`` unless ``CALLQUAL_TEST_PG_USER`` names another) and the commands run
through ``runuser`` when the tests run as root. The server listens on a free loopback port
and a socket in the cluster's directory, and is stopped when the session ends.
Never skipped: a missing PostgreSQL fails with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("CALLQUAL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = os.environ.get("CALLQUAL_TEST_PG_USER", "nobody")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One throwaway cluster; :meth:`stop`/:meth:`start` let fault tests take it away and back."""

    def __init__(self, durable: bool = False) -> None:
        """``durable=False`` (tests): no fsync, no synchronous commit; benchmarks keep the defaults."""
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (PG_BIN / tool).exists():
                pytest.fail(f"PostgreSQL not installed: {PG_BIN / tool} missing (scripts/setup installs it)")
        self.root = Path(tempfile.mkdtemp(prefix="callqual-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, user=PG_USER)
        self.root.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 50\nshared_buffers = 256MB\n"
            )
            if not durable:
                conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(PG_BIN / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", PG_USER, "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)
        if proc.returncode != 0:
            pytest.fail(f"{tool} failed ({proc.returncode}): {proc.stderr[-2000:] or proc.stdout[-2000:]}")

    def start(self) -> None:
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> None:
        """Run administrative SQL (CREATE DATABASE, roles) with autocommit."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as c:
            c.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.create_database()

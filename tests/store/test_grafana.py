"""Every panel of the call-store dashboard runs on a real PostgreSQL, as Grafana's read-only role."""

import json
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from callqual.schemas import AnalysisReport
from callqual.simulator import simulate
from callqual.store.embedded import analyze_into_store
from tests.postgres_server import PG_BIN
from tests.store.captures import capture
from tests.store.grafana_macros import expand

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "callqual-store.json"
GRAFANA_PASSWORD = "grafana-ro-pw"


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: Any
) -> tuple[str, list[AnalysisReport]]:
    """A store with the demo capture and aaa.pcap, and the read-only role; the role's URL."""
    url = postgres_server.create_database()
    demo = tmp_path_factory.mktemp("grafana") / "demo.pcap"
    simulate("demo", demo, seed=5)
    reports = [analyze_into_store(p, url).report for p in (demo, capture("rtp-pcap/aaa.pcap"))]
    psql = subprocess.run(
        [
            *(str(PG_BIN / "psql"), "-v", "ON_ERROR_STOP=1", "-v", f"grafana_password={GRAFANA_PASSWORD}"),
            *("-v", "store_owner=postgres", "-f", str(DEPLOY / "postgres" / "grafana-readonly.sql"), url),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert psql.returncode == 0, psql.stderr
    grafana_url = url.replace("postgresql://postgres@", f"postgresql://callqual_grafana:{GRAFANA_PASSWORD}@")
    return grafana_url, reports


def _panels() -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}


def _run(url: str, panel: dict[str, Any], start: datetime, end: datetime) -> list[dict[str, Any]]:
    (target,) = panel["targets"]
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(expand(target["rawSql"], start, end))  # type: ignore[arg-type]
        return cur.fetchall()


def _window(report: AnalysisReport) -> tuple[datetime, datetime]:
    first = min(c.start_ts for c in report.calls)
    last = max(*(c.start_ts for c in report.calls), *(a.first_ts for a in report.alerts))
    second = timedelta(seconds=1)
    return datetime.fromtimestamp(first, UTC) - second, datetime.fromtimestamp(last, UTC) + second


def _in(ts: float, start: datetime, end: datetime) -> bool:
    return start.timestamp() <= ts <= end.timestamp()


@pytest.mark.parametrize("which", [0, 1])
def test_every_panel_returns_the_rows_of_its_time_range(
    loaded: tuple[str, list[AnalysisReport]], which: int
) -> None:
    url, reports = loaded
    start, end = _window(reports[which])
    calls = [c for r in reports for c in r.calls if _in(c.start_ts, start, end)]
    alerts = [a for r in reports for a in r.alerts if _in(a.first_ts, start, end)]
    assert calls and alerts
    panels = _panels()

    rows = _run(url, panels["Alerts"], start, end)
    assert sorted((r["rule"], r["call_id"], r["summary"]) for r in rows) == sorted(
        (a.rule, a.call_id, a.summary) for a in alerts
    )
    assert [r["time"] for r in rows] == sorted((r["time"] for r in rows), reverse=True)
    assert set(rows[0]) == {"time", "severity", "rule", "source", "call_id", "summary"}

    rows = _run(url, panels["Problem calls"], start, end)
    assert sorted(r["call_id"] for r in rows) == sorted(c.call_id for c in calls if c.category != "ok")
    for r in rows:
        record = next(c for c in calls if c.call_id == r["call_id"])
        assert r["problems"] == (", ".join(record.problems) or None)

    rows = _run(url, panels["Calls by category (per minute)"], start, end)
    by_category: Counter[str] = Counter()
    for r in rows:
        by_category[r["metric"]] += r["calls"]
        assert r["time"] % 60 == 0
    assert by_category == Counter(c.category for c in calls)

    rows = _run(url, panels["Alerts by rule"], start, end)
    assert {(r["rule"], r["severity"]): r["alerts"] for r in rows} == Counter(
        (a.rule, a.severity) for a in alerts
    )


def test_an_empty_time_range_returns_no_rows(loaded: tuple[str, list[AnalysisReport]]) -> None:
    url, _ = loaded
    start = datetime(1999, 1, 1, tzinfo=UTC)
    for panel in _panels().values():
        assert _run(url, panel, start, start + timedelta(hours=1)) == []


def test_grafanas_role_cannot_write(loaded: tuple[str, list[AnalysisReport]]) -> None:
    url, _ = loaded
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("DELETE FROM alerts")


def test_call_rows_link_to_the_web_ui_and_the_datasource_is_read_only() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert any(v["name"] == "CALLQUAL_UI_BASE_URL" for v in dashboard["templating"]["list"])
    linked = 0
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "callqual-store"
        if "call_id" in panel["targets"][0]["rawSql"]:
            (override,) = [
                o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "call_id"
            ]
            (link,) = override["properties"][0]["value"]
            assert link["url"] == "${CALLQUAL_UI_BASE_URL}/calls/${__data.fields.call_id:percentencode}"
            linked += 1
    assert linked == 2
    source = DEPLOY / "grafana" / "provisioning" / "datasources" / "callqual-store.yml"
    (ds,) = yaml.safe_load(source.read_text())["datasources"]
    assert ds["uid"] == "callqual-store" and ds["user"] == "callqual_grafana"
    assert ds["secureJsonData"]["password"] == "$__env{CALLQUAL_GRAFANA_DB_PASSWORD}"

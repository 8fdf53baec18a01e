"""``callqual analyze --store`` and ``callqual calls`` as a user runs them, on SQLite and PostgreSQL."""

import json
from pathlib import Path

import pytest

from callqual.cli.main import main
from callqual.schemas import AnalysisReport
from callqual.store.engine import open_store
from callqual.store.queries import call_detail
from tests.shared_captures import PCAPS

CAPTURE = PCAPS / "rtp-pcap/aaa.pcap"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'calls.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _analyze(store_url: str, capsys: pytest.CaptureFixture[str]) -> AnalysisReport:
    code = main(["analyze", str(CAPTURE), "--store", store_url, "--format", "json", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = AnalysisReport.model_validate_json(out)
    assert f"stored {report.summary.calls} calls" in err
    assert f"{report.summary.sip_messages} new SIP messages" in err
    return report


def test_analyze_store_then_search(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = _analyze(store_url, capsys)
    assert main(["calls", "--store", store_url, "--format", "json", "--limit", "1000"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"] == report.summary.calls == len(doc["rows"])
    assert doc["facets"] == report.summary.calls_by_category
    assert {r["call_id"] for r in doc["rows"]} == {c.call_id for c in report.calls}

    assert main(["calls", "--store", store_url, "--user", "0097*", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows and all(r["to_user"].startswith("0097") for r in rows)

    assert main(["calls", "--store", store_url, "--category", "failed_auth"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("start (UTC)")
    failed_auth = report.summary.calls_by_category["failed_auth"]
    assert table[-1] == f"{len(table) - 2} of {failed_auth} calls (failed_auth {failed_auth})"

    # The store keeps each message's bytes (a report alone leaves them out: keep_sip_raw).
    engine = open_store(store_url, migrate=False)
    with engine.connect() as conn:
        detail = call_detail(conn, report.calls[0].call_id)
    engine.dispose()
    assert detail is not None and detail.messages
    for message in detail.messages:
        assert message.raw.startswith(message.first_line.encode())
        assert b"\r\nCall-ID:" in message.raw or b"\r\ni:" in message.raw

    # A second run stores no new message.
    main(["analyze", str(CAPTURE), "--store", store_url, "--no-progress"])
    assert "0 new SIP messages" in capsys.readouterr().err


def test_unreachable_store_is_a_clear_error_without_the_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = "postgresql://callqual:s3cr3t-pw@127.0.0.1:9/calls"
    assert main(["analyze", str(CAPTURE), "--store", url, "--no-progress"]) == 5
    err = capsys.readouterr().err
    assert "could not be opened" in err and "s3cr3t-pw" not in err
    assert main(["calls", "--store", url]) == 5
    err = capsys.readouterr().err
    assert "could not be opened" in err and "s3cr3t-pw" not in err
    assert main(["calls", "--store", "mysql://x/y"]) == 2
    assert "unsupported store URL" in capsys.readouterr().err
    assert main(["calls"]) == 2


def test_analyze_store_with_retention_drops_old_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 2005 capture is far older than 30 days by the wall clock: stored, then aged out."""
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    assert main(["analyze", str(CAPTURE), "--store", url, "--retention-days", "30", "--no-progress"]) == 0
    assert "store keeps rows from" in capsys.readouterr().err
    assert main(["calls", "--store", url, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 0

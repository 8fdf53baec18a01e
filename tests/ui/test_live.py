"""Server-sent events: alerts the embedded pipeline commits reach an open stream by themselves."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx

from callqual.store.embedded import analyze_into_store
from callqual.ui.app import create_app
from callqual.ui.routes.live import resume_cursor, sse_event
from callqual.ui.settings import UiSettings
from tests.shared_captures import PCAPS
from tests.ui.ui_server import serving


def test_sse_event_gives_every_line_its_data_field() -> None:
    event = sse_event("alert", "<tr>\n<td>x</td>\n</tr>", 7)
    assert event == "event: alert\nid: 7\ndata: <tr>\ndata: <td>x</td>\ndata: </tr>\n\n"


def test_a_reconnecting_browser_resumes_after_what_it_got() -> None:
    assert resume_cursor(3, None) == 3
    assert resume_cursor(3, "9") == 9
    assert resume_cursor(12, "9") == 12
    assert resume_cursor(3, "junk") == 3


def _read_events(response: httpx.Response, wanted: int) -> list[str]:
    """Rows of the first ``wanted`` alert events (the read timeout bounds the wait)."""
    events: list[str] = []
    data: list[str] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            events.append("\n".join(data))
            data = []
            if len(events) == wanted:
                break
    return events


def test_new_alerts_arrive_on_an_open_stream(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    analyze_into_store(PCAPS / "rtp-pcap/sip-rtp-g722.pcap", url)  # a clean call: no alerts yet
    settings = UiSettings(store_url=url, overview_hours=None, live_poll_s=0.05)
    app = create_app(settings)
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        page = http.get("/alerts").text
        cursor = int(re.search(r"after=(\d+)", page).group(1))  # type: ignore[union-attr]
        assert cursor == 0 and 'class="alert-row' not in page
        with http.stream("GET", "/events/alerts", params={"after": cursor, "rule": "call_failed"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            writer = threading.Thread(target=analyze_into_store, args=(PCAPS / "rtp-pcap/aaa.pcap", url))
            writer.start()
            rows = _read_events(stream, 4)
            writer.join()
        assert len(rows) == 4
        assert all('class="alert-row sev-' in r and "<td>call_failed</td>" in r for r in rows)
        stored = http.get("/api/alerts", params={"rule": "call_failed"}).json()
        assert {re.search(r'id="alert-(\d+)"', r).group(1) for r in rows} == {  # type: ignore[union-attr]
            str(a["seq"]) for a in stored["rows"]
        }
        everything = http.get("/api/alerts").json()["rows"]
        assert f"after={max(a['seq'] for a in everything)}&amp;view=overview" in http.get("/").text

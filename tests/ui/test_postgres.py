"""The UI over a real PostgreSQL store (the production engine): pages, exports, live feed."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx

from callqual.store.embedded import analyze_into_store
from callqual.ui.app import create_app
from callqual.ui.settings import UiSettings
from callqual.ui.urls import call_url
from tests.shared_captures import PCAPS
from tests.ui.conftest import SCRIPT, SCRIPT_CALL_ID, script_capture
from tests.ui.ui_server import serving

FAILED_CALL = "11894297-4432a9f8@192.168.1.2"


def test_pages_exports_and_live_feed_over_postgresql(postgres_url: str, tmp_path: Path) -> None:
    analyze_into_store(script_capture(tmp_path / "script.pcap"), postgres_url)
    app = create_app(UiSettings(store_url=postgres_url, overview_hours=None, live_poll_s=0.05))
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        page = http.get("/alerts").text
        cursor = int(re.search(r"after=(\d+)", page).group(1))  # type: ignore[union-attr]
        with http.stream("GET", "/events/alerts", params={"after": cursor}) as stream:
            writer = threading.Thread(
                target=analyze_into_store, args=(PCAPS / "rtp-pcap/aaa.pcap", postgres_url)
            )
            writer.start()
            seen = 0
            for line in stream.iter_lines():
                seen += line.startswith("event: alert")
                if seen == 7:
                    break
            writer.join()
        assert seen == 7
        call = http.get(call_url(FAILED_CALL)).text
        assert call.count('class="msg ') == 8
        pcap = http.get(call_url(FAILED_CALL, ".pcap"))
        assert pcap.status_code == 200 and len(pcap.content) > 24 * 8
        assert http.get("/api/calls").json()["total"] == 5
        script_page = http.get(call_url(SCRIPT_CALL_ID)).text
        assert SCRIPT not in script_page and "&lt;script&gt;" in script_page

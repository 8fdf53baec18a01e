"""Screenshots of the UI's pages for the README (docs/screenshots/), from the demo capture.

    python bench/ui_screenshots.py [--capture bench/out/demo.pcap] [--out docs/screenshots]

Analyses the capture into a temporary SQLite store, serves the UI on a free loopback port
and drives Debian's chromium (Playwright, ``executable_path=/usr/bin/chromium``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.store.embedded import analyze_into_store  # noqa: E402
from callqual.store.engine import open_store  # noqa: E402
from callqual.store.queries import AlertFilter, search_alerts  # noqa: E402
from callqual.ui.app import create_app  # noqa: E402
from callqual.ui.settings import UiSettings  # noqa: E402
from callqual.ui.urls import call_url  # noqa: E402
from tests.ui.ui_server import serving  # noqa: E402

VIEWPORT = {"width": 1200, "height": 760}


def shoot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path))
    print(f"{path} ({path.stat().st_size // 1024} KiB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--capture", type=Path, default=ROOT / "bench/out/demo.pcap")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'calls.db'}"
        analyze_into_store(args.capture, url)
        engine = open_store(url)
        with engine.connect() as conn:
            alerts = search_alerts(conn, AlertFilter(rule="packet_loss", limit=1)).rows
        app = create_app(UiSettings(store_url=url, overview_hours=None), engine)
        with serving(app) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(base + "/")
            page.wait_for_selector("[data-live-status]:text('live')")
            shoot(page, args.out / "overview.png")
            page.goto(base + "/alerts")
            page.locator("tr.alert-row", has_text="call_failed").first.get_by_role("button").click()
            page.wait_for_selector(".evidence pre .hit")
            shoot(page, args.out / "error-log.png")
            page.goto(base + "/calls")
            shoot(page, args.out / "calls.png")
            if alerts and alerts[0].call_id:
                page.goto(base + call_url(alerts[0].call_id))
                page.locator("svg.ladder .msg").first.click()
                page.wait_for_selector("#raw-message pre")
                page.locator("section.ladder-section").scroll_into_view_if_needed()
                shoot(page, args.out / "call.png")
            page.goto("about:blank")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

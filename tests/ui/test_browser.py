"""Real-browser tests: Debian's chromium driven by Playwright (never ``playwright install``).

Screenshots are test artefacts under ``bench/out/screenshots`` (gitignored).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from callqual.simulator import simulate
from callqual.store.embedded import analyze_into_store
from callqual.ui.app import create_app
from callqual.ui.settings import UiSettings
from callqual.ui.urls import call_url
from tests.shared_captures import PCAPS
from tests.ui.ui_server import serving

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "bench" / "out" / "screenshots"
FAILED_CALL = "11894297-4432a9f8@192.168.1.2"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == []  # no CSP violation, no script error, no missing resource


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_call_page_ladder_click_and_keyboard(page: Page, ui_url: str) -> None:
    page.goto(ui_url + call_url(FAILED_CALL))
    arrows = page.locator("svg.ladder .msg")
    expect(arrows).to_have_count(8)
    expect(page.locator("svg.ladder .col-label")).to_have_text(["192.168.1.2:5060", "212.242.33.35:5060"])
    arrows.nth(6).click()  # the 480
    raw = page.locator("#raw-message pre")
    expect(raw).to_contain_text("SIP/2.0 480 Error")
    expect(raw.locator(".hit").first).to_contain_text("SIP/2.0 480 Error")  # the evidence line, highlighted
    _shot(page, "call")
    arrows.nth(0).focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(raw).to_contain_text("SIP/2.0 407 authentication required")
    page.keyboard.press("ArrowDown")
    page.keyboard.press(" ")
    expect(raw).to_contain_text("ACK sip:35104724@sip.cybercity.dk SIP/2.0")
    page.get_by_role("link", name="frame 621: SIP/2.0 480 Error").click()
    expect(page.locator("#raw-message figcaption")).to_contain_text("frame 621")


def test_error_log_row_opens_its_error_packets(page: Page, ui_url: str) -> None:
    page.goto(ui_url + "/alerts?rule=call_failed")
    rows = page.locator("tr.alert-row")
    expect(rows).to_have_count(4)
    rows.first.get_by_role("button", name="Error packets").click()
    evidence = page.locator(".evidence").first
    expect(evidence.locator("pre .hit").first).to_be_visible()
    _shot(page, "alerts")
    evidence.get_by_role("link", name="open the call").click()
    expect(page.locator("svg.ladder")).to_be_visible()


def test_keyboard_navigation_on_tables(page: Page, ui_url: str) -> None:
    page.goto(ui_url + "/calls")
    rows = page.locator("table.calls tbody tr")
    rows.nth(0).focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    target = rows.nth(2).get_attribute("data-href")
    assert page.evaluate("document.activeElement.dataset.href") == target
    page.keyboard.press("ArrowUp")
    second = rows.nth(1).get_attribute("data-href")
    assert second and page.evaluate("document.activeElement.dataset.href") == second
    _shot(page, "calls")
    page.keyboard.press("Enter")
    page.wait_for_url(ui_url + second)
    expect(page.locator("svg.ladder")).to_be_visible()


def test_new_alerts_appear_on_an_open_error_log(page: Page, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    analyze_into_store(PCAPS / "rtp-pcap/sip-rtp-g722.pcap", url)  # no alerts yet
    app = create_app(UiSettings(store_url=url, overview_hours=None, live_poll_s=0.1))
    with serving(app) as base:
        page.goto(base + "/alerts")
        expect(page.locator("[data-live-status]")).to_have_text("live")
        expect(page.locator("tr.alert-row")).to_have_count(0)
        writer = threading.Thread(target=analyze_into_store, args=(PCAPS / "rtp-pcap/aaa.pcap", url))
        writer.start()
        writer.join(120)
        expect(page.locator("tr.alert-row")).to_have_count(7, timeout=20_000)
        expect(page.locator("tr.alert-row.new").first).to_contain_text("192.168.1.2")
        _shot(page, "alerts-live")
        page.goto(base + "/")
        expect(page.locator("[data-live-status]")).to_have_text("live")
        _shot(page, "overview")
        page.goto("about:blank")  # close the event stream before the server goes


def test_overview_updates_by_itself(page: Page, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    analyze_into_store(PCAPS / "rtp-pcap/sip-rtp-g722.pcap", url)
    app = create_app(UiSettings(store_url=url, overview_hours=None, live_poll_s=0.1))
    with serving(app) as base:
        page.goto(base + "/")
        expect(page.locator("[data-live-status]")).to_have_text("live")
        calls = page.locator("#calls-figure")
        expect(calls).to_have_text("1")
        analyze_into_store(PCAPS / "rtp-pcap/aaa.pcap", url)
        expect(page.locator("#alert-feed li")).to_have_count(7, timeout=20_000)  # pushed (SSE)
        expect(calls).to_have_text("5", timeout=20_000)  # refreshed (every 10 s)
        page.goto("about:blank")


@pytest.mark.tshark
def test_overview_to_alert_to_ladder_to_raw_packet_to_pcap(page: Page, tmp_path: Path) -> None:
    """The issue's "done when", as a new user walks it on the demo capture."""
    demo = tmp_path / "demo.pcap"
    simulate("demo", demo, seed=7)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    analyze_into_store(demo, url)
    with serving(create_app(UiSettings(store_url=url, overview_hours=None))) as base:
        page.goto(base + "/")
        page.get_by_role("link", name="All alerts →").click()
        page.get_by_label("Rule").fill("packet_loss")
        page.get_by_role("button", name="Filter").click()
        row = page.locator("tr.alert-row").first
        row.get_by_role("button", name="Error packets").click()
        evidence = page.locator(".evidence").first
        expect(evidence.locator("pre .hit").first).to_be_visible()
        evidence.get_by_role("link", name="open the call").click()
        ladder = page.locator("svg.ladder")
        expect(ladder).to_be_visible()
        arrows = ladder.locator(".msg")
        count = arrows.count()
        assert count >= 6
        arrows.nth(0).click()
        expect(page.locator("#raw-message pre")).to_contain_text("INVITE sip:")
        with page.expect_download() as download:
            page.get_by_role("link", name="pcap").click()
        saved = tmp_path / "call.pcap"
        download.value.save_as(saved)
        page.goto("about:blank")
    out = subprocess.run(
        ["tshark", "-r", str(saved), "-Y", "sip", "-T", "fields", "-e", "sip.Call-ID"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(out) == count and len(set(out)) == 1

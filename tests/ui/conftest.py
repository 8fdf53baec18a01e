"""A call store filled from shared captures (SQLite, via the store's embedded path), and the UI over it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from callqual.store.embedded import analyze_into_store
from callqual.store.engine import open_store
from callqual.ui.app import create_app
from callqual.ui.model import SipMessage
from callqual.ui.pcap_export import export_pcap
from callqual.ui.settings import UiSettings
from tests.shared_captures import PCAPS
from tests.ui.captured_calls import captured_call
from tests.ui.ui_server import serving

#: Failed calls with alerts (aaa), RTP with intervals, TCP, IPv6, a no-media alert
STORE_CAPTURES = [
    "rtp-pcap/aaa.pcap",
    "rtp-pcap/sip-rtp-g722.pcap",
    "rtp-pcap/SIP_DTMF2.pcap",
    "heplify/rtp_rtcp_sip_ipv4_udp.pcap",
    "heplify/sip_ipv4_tcp.pcap",
    "heplify/sip_ipv6_udp.pcap",
]
SCRIPT = "<script>alert(1)</script>"
SCRIPT_CALL_ID = "script-header-call@example.test"
#: Characters a Call-ID may hold (RFC 3261 ``word``) that a URL path must escape
ODD_CALL_ID = "a/b?c%41+(d)~e:f@example.test"


def _recast(call_id: str, user_agent: str | None, display: str | None) -> list[SipMessage]:
    """The g722 call under another Call-ID, with an extra User-Agent and From display name."""
    messages, _ = captured_call("rtp-pcap/sip-rtp-g722.pcap")
    out = []
    for m in messages:
        raw = m.raw
        old = raw.split(b"Call-ID: ", 1)[1].split(b"\r\n", 1)[0]
        raw = raw.replace(b"Call-ID: " + old, b"Call-ID: " + call_id.encode())
        if user_agent is not None:
            raw = raw.replace(b"\r\n\r\n", f"\r\nUser-Agent: {user_agent}\r\n\r\n".encode(), 1)
        if display is not None:
            raw = raw.replace(b'From: "G722/8000"', f'From: "{display}"'.encode())
        out.append(replace(m, raw=raw))
    return out


def script_capture(path: Path) -> Path:
    """The g722 call with a hostile User-Agent and From display name (and its own Call-ID)."""
    path.write_bytes(export_pcap(_recast(SCRIPT_CALL_ID, SCRIPT, SCRIPT)))
    return path


def odd_call_id_capture(path: Path) -> Path:
    """The g722 call under a Call-ID full of URL-special characters."""
    path.write_bytes(export_pcap(_recast(ODD_CALL_ID, None, None)))
    return path


@pytest.fixture(scope="session")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("ui-store")
    url = f"sqlite:///{tmp / 'calls.db'}"
    for name in STORE_CAPTURES:
        analyze_into_store(PCAPS / name, url)
    analyze_into_store(script_capture(tmp / "script.pcap"), url)
    analyze_into_store(odd_call_id_capture(tmp / "odd.pcap"), url)
    return url


@pytest.fixture(scope="session")
def store_engine(store_url: str) -> Iterator[Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def ui_url(store_url: str, store_engine: Engine) -> Iterator[str]:
    app = create_app(UiSettings(store_url=store_url, overview_hours=None), store_engine)
    with serving(app) as url:
        yield url


@pytest.fixture
def http(ui_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ui_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="session")
def ui_small_pages(store_url: str, store_engine: Engine) -> Iterator[str]:
    """The same store, five rows a page."""
    app = create_app(UiSettings(store_url=store_url, overview_hours=None, page_size=5), store_engine)
    with serving(app) as url:
        yield url

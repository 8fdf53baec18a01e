"""Shared captures the store tests load, and a helper that counts what the analysis saw."""

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnalysisReport, AnyEvent
from callqual.store.engine import open_store
from tests.shared_captures import PCAPS

#: Calls with and without media, failures, retransmissions, TCP/WebSocket, ERSPAN, interval reports.
CAPTURES = [
    "rtp-pcap/aaa.pcap",
    "rtp-pcap/sip-rtp-g726.pcap",
    "rtp-pcap/SIP_DTMF2.pcap",
    "heplify/erspan_sip_ipv4_udp.pcapng",
    "heplify/sip_tcp_websocket.pcap",
    "heplify/rtp_rtcp_sip_ipv4_udp.pcap",
]


def capture(name: str) -> Path:
    return PCAPS / name


def analyse(name: str) -> tuple[AnalysisReport, Counter[str]]:
    """The JSON report of a capture and its collector events by kind (``rtp_interval`` for final=False)."""
    kinds: Counter[str] = Counter()

    def count(event: AnyEvent) -> None:
        kinds["rtp_interval" if event.kind == "rtp_stream" and not event.final else event.kind] += 1

    pipeline = EmbeddedPipeline(on_event=count)
    with open_capture(capture(name)) as cap:
        pipeline.run(cap)
        pipeline.finish()
        return pipeline.report(str(capture(name)), cap.truncated, cap.errors), kinds


@contextmanager
def store(url: str) -> Iterator[Engine]:
    """An engine on ``url``, disposed afterwards (open pooled connections would warn at exit)."""
    engine = open_store(url)
    try:
        yield engine
    finally:
        engine.dispose()

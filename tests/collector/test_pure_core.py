"""The pure modules import no adapter: no Kafka, HTTP, Prometheus, libpcap or file reader."""

import subprocess
import sys

PURE = [
    "callqual.collector.collector",
    "callqual.collector.chunk_path",
    "callqual.collector.chunk_staging",
    "callqual.collector.frame_path",
    "callqual.collector.signalling",
    "callqual.collector.payload",
    "callqual.pipeline.child_emit",
    "callqual.collector.media.flow_table",
    "callqual.collector.media.media_flow",
    "callqual.collector.frame_guard",
    "callqual.collector.decode.frame_decoder",
    "callqual.collector.sip.message",
    "callqual.collector.sip.sdp",
    "callqual.collector.media.rtp_stream",
    "callqual.collector.media.rtcp",
    "callqual.detector.detector",
    "callqual.detector.rule_engine",
    "callqual.detector.features",
    "callqual.detector.feature_ranges",
    "callqual.detector.emodel",
    "callqual.store.rows",
    "callqual.ui.ladder",
    "callqual.ui.call_flow_text",
    "callqual.ui.pcap_export",
    "callqual.ui.charts",
    "callqual.ui.call_view",
]
ADAPTERS = [
    "confluent_kafka",
    "httpx",
    "prometheus_client",
    "pcapy",
    "callqual.collector.capture.pcap_file",
    "callqual.collector.capture.live",
    "callqual.transport.kafka",
    "sqlalchemy",
    "psycopg",
    "fastapi",
    "uvicorn",
]

_CHECK = f"""
import importlib, sys
for name in {PURE!r}:
    importlib.import_module(name)
loaded = sorted(a for a in {ADAPTERS!r} if a in sys.modules)
print(",".join(loaded))
"""


def test_pure_modules_import_no_adapter() -> None:
    proc = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "", f"pure modules pulled in: {proc.stdout.strip()}"

"""A capture that arrives through a pipe: ``tcpdump -w - | callqual analyze -``, a FIFO, gzip on the fly.

A pipe cannot seek or tell its position, and is read once: the reader must not ask for either
(it used to die with ``OSError: Illegal seek``), and ``--workers`` (one read per worker) must be
refused with a clear usage error. Every pipe gives the same report as the file itself.
"""

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.shared_captures import PCAPS

#: pcapng with SIP calls (ERSPAN-encapsulated), and a classic pcap with a call and its RTP
CAPTURES = [PCAPS / "heplify" / "erspan_sip_ipv4_udp.pcapng", PCAPS / "rtp-pcap" / "sip-rtp-g729a.pcap"]


def _analyze(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "callqual", "analyze", *args, "--format", "json"],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _without_source(raw: bytes) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(raw)
    report["summary"].pop("source")
    return report


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_standard_input_and_gzip_through_a_pipe_give_the_files_report(capture: Path) -> None:
    from_file = _analyze([str(capture), "--no-split"])
    assert from_file.returncode == 0, from_file.stderr
    expected = _without_source(from_file.stdout)
    assert expected["calls"]
    for data in (capture.read_bytes(), gzip.compress(capture.read_bytes())):
        for split in ("--no-split", "--split"):
            piped = _analyze(["-", split], stdin=data)
            assert piped.returncode == 0, piped.stderr
            assert b"Traceback" not in piped.stderr
            assert _without_source(piped.stdout) == expected


def test_a_fifo_is_read_like_a_file(tmp_path: Path) -> None:
    capture = CAPTURES[0]
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(capture.read_bytes()), daemon=True)
    writer.start()
    piped = _analyze([str(fifo)])
    writer.join(timeout=30)
    assert piped.returncode == 0, piped.stderr
    assert _without_source(piped.stdout) == _without_source(_analyze([str(capture)]).stdout)


def test_workers_on_a_pipe_is_a_usage_error() -> None:
    piped = _analyze(["-", "--workers", "2"], stdin=CAPTURES[1].read_bytes())
    assert piped.returncode == 2
    assert b"--workers reads the capture once per worker: not a pipe" in piped.stderr
    assert b"Traceback" not in piped.stderr

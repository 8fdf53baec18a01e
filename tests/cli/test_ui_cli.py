"""``callqual ui CAPTURE``: analyse into a temporary store, serve it, stop cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.shared_captures import PCAPS
from tests.ui.ui_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQUAL_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_ui_serves_a_capture_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "callqual", "ui", str(PCAPS / "rtp-pcap/aaa.pcap"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].strip() == f"callqual ui: 4 calls, 7 alerts from {PCAPS / 'rtp-pcap/aaa.pcap'}"
        assert lines[1].strip() == f"callqual ui: serving http://127.0.0.1:{port}/"
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        assert httpx.get(base + "/api/calls").json()["total"] == 4
        assert httpx.get(base + "/api/alerts").json()["total"] == 7
        page = httpx.get(base + "/")
        assert page.status_code == 200 and 'id="calls-figure">4</span> calls' in page.text
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_ui_on_an_unreadable_capture_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture at all")
    for target, reason in [(junk, "not a readable capture"), (tmp_path / "missing.pcap", "No such file")]:
        r = subprocess.run(
            [sys.executable, "-m", "callqual", "ui", str(target)],
            capture_output=True, text=True, env=_env(), timeout=60, check=False,
        )  # fmt: skip
        assert r.returncode == 3
        assert reason in r.stderr and "Traceback" not in r.stderr


def test_ui_wants_a_capture_or_a_store() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "callqual", "ui"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )
    assert r.returncode == 2 and "one of a capture file, --store URL or --interface IF" in r.stderr

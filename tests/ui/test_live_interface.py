"""``callqual ui --interface``: a live capture stored as it happens, the UI showing it meanwhile.

The traffic is a shared capture replayed by tcpreplay onto a veth pair in a network namespace
this test creates (the collector's ``link`` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.collector.test_live_capture import Link, link  # noqa: F401 - the fixture
from tests.shared_captures import PCAPS
from tests.ui.ui_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def _until(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting for the live store"
        time.sleep(0.2)


def test_live_interface_fills_the_store_while_serving(link: Link) -> None:  # noqa: F811
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQUAL_")} | {"PYTHONPATH": str(ROOT)}
    cli = subprocess.Popen(
        [sys.executable, "-m", "callqual", "ui", "--interface", link.interface, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline().strip() == f"callqual ui: capturing on {link.interface}"
        assert "serving" in cli.stdout.readline()
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(base + "/healthz").status_code == 200
            except httpx.TransportError:
                return False

        _until(up)
        assert httpx.get(base + "/api/calls").json()["total"] == 0
        replay = subprocess.run(
            ["tcpreplay", "-i", link.interface, "--pps", "500", str(PCAPS / "rtp-pcap/aaa.pcap")],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        _until(lambda: httpx.get(base + "/api/alerts").json()["total"] == 7)
        calls = httpx.get(base + "/api/calls").json()
        assert calls["total"] == 4
        failed = httpx.get(base + "/calls/11894297-4432a9f8@192.168.1.2")
        assert failed.status_code == 200 and failed.text.count('class="msg ') == 8
    finally:
        cli.send_signal(signal.SIGTERM)
        _, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    assert "Traceback" not in err and "rows not stored" not in err

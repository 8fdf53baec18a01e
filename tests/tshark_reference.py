"""tshark as the reference implementation for RTP/RTCP numbers.

Our statistics are only credible if they agree with what an engineer gets
from Wireshark, so the tests run the installed tshark (Debian 4.0.17) on the
same capture and compare. Everything here is test-only and does I/O.
"""

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.shared_captures import PCAPS  # noqa: F401 - re-exported for the tests that import it from here

#: 5-tuple + SSRC, as ``-z rtp,streams`` keys a stream
StreamKey = tuple[str, int, str, int, int]

_FLOAT = r"(-?\d+(?:\.\d+)?)"
# ui/cli/tap-rtp.c prints one stream per line; the Payload column may hold
# spaces ("g711A, telephone-event", "Exp. from Xerox PARC"), so anchor the
# numeric columns on both sides of it.
_ROW = re.compile(
    r"^\s*" + _FLOAT + r"\s+" + _FLOAT + r"\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+0x([0-9A-Fa-f]+)\s+(.*?)\s+"
    r"(\d+)\s+(-?\d+)\s+\((-?[\d.]+|nan|-?inf)%\)\s+" + r"\s+".join([_FLOAT] * 6) + r"\s*(X?)\s*$"
)


@dataclass(frozen=True)
class TsharkStream:
    """One row of ``tshark -q -z rtp,streams``."""

    start_time: float
    end_time: float
    payload: str
    packets: int
    lost: int
    min_delta_ms: float
    mean_delta_ms: float
    max_delta_ms: float
    min_jitter_ms: float
    mean_jitter_ms: float
    max_jitter_ms: float
    problem: bool


def tshark_available() -> bool:
    return shutil.which("tshark") is not None


#: A marker, not a skip: without tshark these tests fail, loudly (scripts/setup installs it).
requires_tshark = pytest.mark.tshark


def _run(args: list[str]) -> str:
    result = subprocess.run(["tshark", *args], capture_output=True, text=True, check=True, timeout=120)
    return result.stdout


def rtp_streams(path: Path | str, heuristic: bool = False) -> dict[StreamKey, TsharkStream]:
    """Run ``tshark -q -r F -z rtp,streams`` and parse the table.

    ``heuristic`` turns on ``rtp.heuristic_rtp`` for captures without SIP/SDP.
    """
    args = ["-q", "-n", "-r", str(path)]
    if heuristic:
        args += ["-o", "rtp.heuristic_rtp:TRUE"]
    args += ["-z", "rtp,streams"]
    rows: dict[StreamKey, TsharkStream] = {}
    for line in _run(args).splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        g = match.groups()
        key = (g[2], int(g[3]), g[4], int(g[5]), int(g[6], 16))
        rows[key] = TsharkStream(
            start_time=float(g[0]),
            end_time=float(g[1]),
            payload=g[7],
            packets=int(g[8]),
            lost=int(g[9]),
            min_delta_ms=float(g[11]),
            mean_delta_ms=float(g[12]),
            max_delta_ms=float(g[13]),
            min_jitter_ms=float(g[14]),
            mean_jitter_ms=float(g[15]),
            max_jitter_ms=float(g[16]),
            problem=g[17] == "X",
        )
    return rows


def fields(
    path: Path | str, display_filter: str, names: list[str], extra: list[str] | None = None
) -> list[list[str]]:
    """``tshark -T fields`` rows (one per frame; multi-occurrence fields stay comma-joined)."""
    args = ["-n", "-r", str(path), *(extra or []), "-Y", display_filter, "-T", "fields", "-E", "occurrence=a"]
    for name in names:
        args += ["-e", name]
    return [line.split("\t") for line in _run(args).splitlines() if line.strip()]

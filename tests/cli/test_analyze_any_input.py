"""``callqual analyze`` on any input exits 0, 3 or 4 with a report or one line of why, never a traceback.

Run as a user runs it (a subprocess), on every shared capture and on a fuzz
corpus made here from a seed: captures of mutated frames, and capture files
with their structure damaged (callqual.fuzz.corpus). Nothing is committed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from callqual.fuzz.corpus import broken_files, pcap_bytes
from callqual.fuzz.driver import load_captures
from callqual.fuzz.mutators import apply_plan, random_plan
from tests.shared_captures import PCAPS

ROOT = Path(__file__).resolve().parents[2]
SHARED = sorted(p for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))


def _corpus() -> dict[str, bytes]:
    rng = random.Random(20261205)
    captures = load_captures(PCAPS)
    out: dict[str, bytes] = {}
    for capture in captures[::4]:
        plan = random_plan(rng, len(capture.frames), capture.sip_frames, 0.3)
        frames, _ = apply_plan(capture.frames, plan)
        out[f"frames-{Path(capture.name).stem}.pcap"] = pcap_bytes(frames)
    for name in ("rtp-pcap/sip-rtp-g722.pcap", "nDPI/rtp.pcapng"):
        for variant, data in broken_files(rng, (PCAPS / name).read_bytes()):
            out[f"file-{Path(name).stem}-{variant}{Path(name).suffix}"] = data
    return out


CORPUS = _corpus()


def _analyze(path: Path, fmt: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "callqual", "analyze", str(path), "--format", fmt, "--no-progress"],
        capture_output=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    # Both streams must be text a terminal or a log collector can take: strict UTF-8.
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


def _assert_clean_outcome(code: int, out: str, err: str, fmt: str) -> None:
    assert code in (0, 3, 4), err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    if code == 3:
        assert out == "" and err.startswith("callqual: ") and err.count("\n") == 1, err
        return
    if fmt == "json":
        assert set(json.loads(out)) == {"summary", "calls", "streams", "alerts"}
    else:
        assert out.startswith("Capture ")
    assert (code == 4) == ("capture truncated" in err), err


@pytest.mark.parametrize("path", SHARED, ids=lambda p: str(p.relative_to(PCAPS)))
def test_every_shared_capture_is_analysed(path: Path) -> None:
    code, out, err = _analyze(path, "json")
    _assert_clean_outcome(code, out, err, "json")
    assert code == 0, err


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_fuzz_corpus_never_ends_in_a_traceback(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(CORPUS[name])
    for fmt in ("json", "text"):
        code, out, err = _analyze(path, fmt)
        _assert_clean_outcome(code, out, err, fmt)

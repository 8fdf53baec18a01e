"""Every shared capture through every mutation of callqual.fuzz.other_tools, analysed in-process.

For each (capture, mutation): the exit code of ``callqual analyze`` (a
traceback is a failure), what the report counted (errors + skipped), and for
the mutations that keep packets intact whether calls, streams and alerts equal
the original's. Prints a markdown table for bench/RESULTS.md.

    PYTHONPATH=$PWD python bench/fuzz_other_tools.py [--captures 'rtp-pcap/*'] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.cli.main import main  # noqa: E402
from callqual.fuzz.other_tools import INTACT, Mutation, damaging, without_frame_numbers  # noqa: E402
from tests.collector.event_equality import assert_same  # noqa: E402
from tests.shared_captures import PCAPS  # noqa: E402


def analyze(path: Path, out: Path) -> tuple[int | str, dict[str, Any] | None]:
    """The exit code (or 'traceback') and the JSON report of ``callqual analyze``."""
    report = out / "report.json"
    report.unlink(missing_ok=True)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            code = main(["analyze", str(path), "--format", "json", "--no-progress", "-o", str(report)])
    except Exception:  # the defect this bench looks for
        traceback.print_exc()
        return "traceback", None
    return code, json.loads(report.read_text()) if report.exists() else None


def same_analysis(a: dict[str, Any], b: dict[str, Any], renumbered: bool) -> bool:
    """Calls, streams and alerts equal, floats to rounding (chunk and frame paths sum in another order)."""
    try:
        for key in ("calls", "streams", "alerts"):
            if renumbered:
                assert_same(without_frame_numbers(a[key]), without_frame_numbers(b[key]), key)
            else:
                assert_same(a[key], b[key], key)
    except AssertionError:
        return False
    return True


def main_bench() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captures", default="*/*", help="glob under the shared pcaps")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fuzz-other-tools-"))
    captures = sorted(p for p in PCAPS.glob(args.captures) if p.suffix in (".pcap", ".pcapng"))
    mutations: list[tuple[Mutation, bool]] = [(m, True) for m in INTACT]
    mutations += [(m, False) for m in damaging(PCAPS / "heplify" / "ipip0.pcap")]
    tally: dict[str, Counter[str]] = {m.name: Counter() for m, _ in mutations}
    failures: list[str] = []
    start = time.monotonic()
    for capture in captures:
        code, original = analyze(capture, out)
        assert original is not None, f"{capture}: the original does not analyse ({code})"
        for mutation, intact in mutations:
            mutated = out / f"mutated.{mutation.suffix}"
            try:
                mutation.apply(capture, mutated)
            except ValueError:
                tally[mutation.name]["n/a"] += 1
                continue
            code, report = analyze(mutated, out)
            tally[mutation.name][f"exit {code}"] += 1
            if code == "traceback" or code not in (0, 3, 4):
                failures.append(f"{capture.relative_to(PCAPS)} {mutation.name}: exit {code}")
                continue
            if report is None:
                continue
            counted = sum(report["summary"]["errors"].values()) + sum(report["summary"]["skipped"].values())
            internal = sorted(r for r in report["summary"]["errors"] if r.startswith("internal."))
            if internal:  # the per-frame guard caught a bug of ours: the run went on, but it is a defect
                failures.append(f"{capture.relative_to(PCAPS)} {mutation.name}: {internal}")
            if intact:
                expected = original
                if mutation.reference is not None:
                    mutation.reference(capture, out / f"reference{capture.suffix}")
                    expected = analyze(out / f"reference{capture.suffix}", out)[1] or {}
                same = same_analysis(report, expected, mutation.renumbers)
                key = "same report" if same else "DIFFERENT report"
                tally[mutation.name][key] += 1
                if key != "same report":
                    failures.append(f"{capture.relative_to(PCAPS)} {mutation.name}: report differs")
            elif counted:
                tally[mutation.name]["counted"] += 1
    print(f"{len(captures)} captures x {len(mutations)} mutations in {time.monotonic() - start:.0f} s\n")
    print("| mutation | kind | results over the captures |")
    print("|---|---|---|")
    for mutation, intact in mutations:
        results = ", ".join(f"{k}: {v}" for k, v in sorted(tally[mutation.name].items()))
        print(f"| `{mutation.name}` | {'intact' if intact else 'damaging'} | {results} |")
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main_bench())

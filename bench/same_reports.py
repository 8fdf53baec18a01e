"""Two checkouts' ``callqual analyze --format json`` on a corpus of captures: output and exit code compared.

For a pure refactor of the capture readers: every file under /work/shared/pcaps, the
benchmark captures, simulated scenarios, the other-tool rewrites of callqual.fuzz and
structurally broken files, each with the default flags, ``--workers 2``, ``--no-split`` and ``--split``.
Prints one line per difference and the count compared; exit 1 on any difference. Usage::

    PYTHONPATH=$PWD python bench/same_reports.py --a /tmp/base --b . [--corpus /tmp/corpus]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.fuzz.corpus import broken_files, write_corpus  # noqa: E402
from callqual.fuzz.other_tools import INTACT, damaging  # noqa: E402

PCAPS = Path("/work/shared/pcaps")
FLAGS: tuple[tuple[str, ...], ...] = ((), ("--workers", "2"), ("--no-split",), ("--split",))
#: shared captures the rewrites and the broken variants start from (a pcap and a pcapng)
SEEDS = (
    "sipp/g711a.pcap",
    "rtp-pcap/sip-rtp-opus.pcap",
    "nDPI/rtp.pcapng",
    "heplify/erspan_sip_ipv4_udp.pcapng",
)


def build_corpus(out: Path) -> list[Path]:
    """Every capture to compare on, made under ``out`` where it is not a file already on disk."""
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in PCAPS.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")
    files.append(ROOT / "bench/out/sip-3000.pcap")
    rtp = out / "rtp-200k.pcap"
    if not rtp.exists():
        subprocess.run(
            ["editcap", "-r", str(ROOT / "bench/out/rtp-realistic.pcap"), str(rtp), "1-200000"], check=True
        )
    files.append(rtp)
    for scenario, seed in (("day", "101"), ("security", "1")):
        sim = out / f"sim-{scenario}.pcap"
        if not sim.exists():
            run = [
                sys.executable,
                "-m",
                "callqual",
                "simulate",
                "--scenario",
                scenario,
                "--seed",
                seed,
                "-o",
                str(sim),
            ]
            subprocess.run(run, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        files.append(sim)
    files += _gzipped_and_merged(out)
    seeds = [PCAPS / s for s in SEEDS if (PCAPS / s).exists()]
    for seed in seeds:
        for mutation in (*INTACT, *damaging(files[0])):
            dst = out / f"{seed.stem}.{mutation.name.replace(' ', '_')}.{mutation.suffix}"
            if not dst.exists():
                try:
                    mutation.apply(seed, dst)
                except (ValueError, subprocess.CalledProcessError):
                    continue
            files.append(dst)
        rng = random.Random(7)
        files += write_corpus(out / f"broken-{seed.stem}", broken_files(rng, seed.read_bytes()))
    return files


def _gzipped_and_merged(out: Path) -> list[Path]:
    """gzip-compressed captures, and a pcapng whose interfaces differ in link type (mergecap)."""
    made = []
    for name in SEEDS:
        dst = out / (Path(name).name + ".gz")
        if not dst.exists():
            dst.write_bytes(gzip.compress((PCAPS / name).read_bytes()))
        made.append(dst)
    merged = out / "merged-linktypes.pcapng"
    if not merged.exists():
        parts = [
            str(PCAPS / n)
            for n in ("sipp/g711a.pcap", "sngrep/ipip.pcap", "heplify/erspan_sip_ipv4_udp.pcapng")
        ]
        subprocess.run(["mergecap", "-F", "pcapng", "-w", str(merged), *parts], check=True)
    made.append(merged)
    return made


def analyze(root: Path, capture: Path, flags: tuple[str, ...]) -> tuple[int, bytes, bytes]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [
        sys.executable,
        "-m",
        "callqual",
        "analyze",
        str(capture),
        "--format",
        "json",
        "--no-progress",
        *flags,
    ]
    proc = subprocess.run(cmd, capture_output=True, cwd=root, env=env, check=False)
    return proc.returncode, proc.stdout, proc.stderr.replace(str(root).encode(), b"ROOT")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True, help="checkout A (before)")
    ap.add_argument("--b", type=Path, required=True, help="checkout B (after)")
    ap.add_argument("--corpus", type=Path, default=Path("/tmp/same-reports-corpus"))
    args = ap.parse_args()
    files = build_corpus(args.corpus)
    compared = differ = 0
    for capture in files:
        for flags in FLAGS:
            a, b = analyze(args.a.resolve(), capture, flags), analyze(args.b.resolve(), capture, flags)
            compared += 1
            if a != b:
                differ += 1
                what = [name for name, x, y in zip(("exit", "stdout", "stderr"), a, b, strict=True) if x != y]
                print(f"DIFFERS {capture} {' '.join(flags)}: {', '.join(what)}", flush=True)
    print(f"{compared} runs on {len(files)} captures compared, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

"""Realistic RTP benchmark capture: N concurrent calls with the impairments real networks have.

The clean ``load`` scenario (``bench/make_load_capture.sh``) sends every packet
on time and in order, which is the best case for any analyser. This one mixes
codecs (G.711 u-law and A-law, G.729, Opus) and gives each call's media what a
span port sees: random loss (0.5-2 %), Gilbert-Elliott burst loss on one call
in eight, 0-4 ms of arrival jitter everywhere (mean 2 ms), reordering on one
call in ten, RFC 4733 DTMF digits on one call in four, RTCP on. Same seed,
same bytes. Usage::

    python bench/make_rtp_capture.py                      # bench/out/rtp-realistic.pcap, 200 calls x 60 s
    python bench/make_rtp_capture.py --calls 20 --duration 10 -o /tmp/small.pcap
"""

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.simulator.engine import write_capture  # noqa: E402
from callqual.simulator.impairments import JitterSpec, LossSpec  # noqa: E402
from callqual.simulator.scenarios import DEFAULT_EPOCH, _pair  # noqa: E402
from callqual.simulator.spec import CallSpec, MediaSpec, ScenarioCalls  # noqa: E402

#: (codec, share of calls)
CODEC_MIX = (("PCMU", 0.45), ("PCMA", 0.3), ("G729", 0.15), ("opus", 0.1))


def _media(rng: random.Random) -> MediaSpec:
    """One call's impairments: always some loss and jitter, sometimes bursts or reordering."""
    if rng.random() < 1 / 8:
        loss = LossSpec(burst=(round(rng.uniform(0.002, 0.01), 4), round(rng.uniform(0.3, 0.6), 2)))
    else:
        loss = LossSpec(random_pct=round(rng.uniform(0.5, 2.0), 2))
    reorder = rng.random() < 1 / 10
    return MediaSpec(loss=loss, jitter=JitterSpec(std_ms=1.0, reorder=reorder))


def realistic_calls(calls: int, duration_s: float, rng: random.Random) -> ScenarioCalls:
    specs = []
    names = [name for name, _ in CODEC_MIX]
    weights = [share for _, share in CODEC_MIX]
    for n in range(calls):
        caller, callee = _pair(n, rng)
        specs.append(
            CallSpec(
                start_s=round(rng.uniform(0.0, 1.0), 6),
                caller=caller,
                callee=callee,
                codec=rng.choices(names, weights)[0],
                pdd_s=round(rng.uniform(0.2, 0.8), 3),
                ring_s=round(rng.uniform(0.2, 1.0), 3),
                talk_s=duration_s,
                media=_media(rng),
                dtmf="".join(rng.choice("0123456789*#") for _ in range(4)) if rng.random() < 0.25 else "",
                description="realistic load call",
            )
        )
    return ScenarioCalls(calls=specs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "bench/out/rtp-realistic.pcap")
    args = ap.parse_args()
    base = f"bench-rtp/{args.seed}"
    start = time.perf_counter()
    specs = realistic_calls(args.calls, args.duration, random.Random(base))
    labels = write_capture(
        specs, args.output, base=base, scenario="bench-rtp", seed=args.seed, epoch=DEFAULT_EPOCH
    )
    print(
        f"{args.output}: {labels.packets} packets ({labels.rtp_packets} RTP, {labels.rtcp_packets} RTCP, "
        f"{labels.sip_packets} SIP), {args.output.stat().st_size / 1e6:.1f} MB in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

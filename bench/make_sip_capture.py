"""Signalling-only benchmark capture: N calls of SIP with realistic headers and SDP, no RTP.

Each call is INVITE/100/180/200/ACK/BYE/200 from the simulator's ladder (Via,
Max-Forwards, From/To with display names and tags, Contact, User-Agent, SDP
offer and answer); 3 % of INVITEs are retransmitted once or twice, 10 % of calls
fail (busy, not found, unavailable, declined, cancelled), a few are challenged
for authentication first. Calls start over ``--spread`` seconds (30,000 in 300 s
by default: 100 call attempts a second, about 3,000 dialogs up at once). Same
seed, same bytes. Usage::

    python bench/make_sip_capture.py                        # bench/out/sip.pcap, 30,000 calls
    python bench/make_sip_capture.py --calls 1000 -o /tmp/sip-small.pcap
"""

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.simulator.engine import write_capture  # noqa: E402
from callqual.simulator.scenarios import DEFAULT_EPOCH, _pair  # noqa: E402
from callqual.simulator.spec import CallSpec, MediaSpec, ScenarioCalls  # noqa: E402

#: (share of calls, final status): what fails and how often; the rest is answered.
FAILURES = ((0.03, 486), (0.02, 404), (0.02, 503), (0.01, 603), (0.02, 487))
CODEC_OFFERS = (("PCMU", "PCMA"), ("PCMA", "PCMU"), ("G729", "PCMU"), ("opus", "PCMU"))


def signalling_calls(calls: int, spread_s: float, rng: random.Random) -> ScenarioCalls:
    """The calls' specs: answered mostly, some failed, some retransmitted, no media packets."""
    specs = []
    for n in range(calls):
        caller, callee = _pair(n, rng)
        roll = rng.random()
        final = 200
        for share, status in FAILURES:
            if roll < share:
                final = status
                break
            roll -= share
        offer = CODEC_OFFERS[n % len(CODEC_OFFERS)]
        spec = CallSpec(
            start_s=round(rng.uniform(0.0, spread_s), 6),
            caller=caller,
            callee=callee,
            codec=offer[0],
            offer=offer,
            pdd_s=round(rng.uniform(0.2, 2.0), 3),
            ring_s=round(rng.uniform(0.5, 6.0), 3),
            talk_s=round(rng.uniform(5.0, 55.0), 3),
            final_status=final,
            invite_retransmissions=rng.choice((1, 2)) if rng.random() < 0.03 else 0,
            auth="challenge_ok" if rng.random() < 0.02 else "none",
            bye_from_callee=rng.random() < 0.4,
            media=MediaSpec(no_media=True, rtcp=False),
            description="signalling load call",
        )
        specs.append(spec)
    return ScenarioCalls(calls=specs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=30_000)
    ap.add_argument("--spread", type=float, default=300.0, help="seconds over which calls start")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "bench/out/sip.pcap")
    args = ap.parse_args()
    base = f"bench-sip/{args.seed}"
    start = time.perf_counter()
    specs = signalling_calls(args.calls, args.spread, random.Random(base))
    labels = write_capture(
        specs, args.output, base=base, scenario="bench-sip", seed=args.seed, epoch=DEFAULT_EPOCH
    )
    print(
        f"{args.output}: {labels.packets} packets ({labels.sip_packets} SIP, {labels.rtp_packets} RTP), "
        f"{args.output.stat().st_size / 1e6:.1f} MB, {len(labels.calls)} calls in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

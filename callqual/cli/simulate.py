"""``callqual simulate``: write a labelled capture (the project's own sample data)."""

import argparse
import sys
from pathlib import Path


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from callqual.simulator.scenarios import SCENARIOS

    p = sub.add_parser("simulate", help="write a labelled VoIP capture from a named scenario")
    p.add_argument("--scenario", default="demo", choices=sorted(SCENARIOS), help="scenario (default demo)")
    p.add_argument("-o", "--output", type=Path, required=True, help="pcap file to write")
    p.add_argument("--labels", type=Path, help="labels JSON (default: OUTPUT with .labels.json)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--calls", type=int, help="number of calls (load scenario)")
    p.add_argument("--duration", type=float, help="call duration in seconds (load scenario)")
    p.add_argument(
        "--no-held-out",
        action="store_true",
        help="day scenario: leave out the held-out model-anomaly kinds (a training day)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from callqual.simulator import simulate, write_labels

    options: dict[str, object] = {}
    if args.calls is not None:
        options["calls"] = args.calls
    if args.duration is not None:
        options["duration"] = args.duration
    if args.no_held_out:
        options["held_out"] = False
    labels = simulate(args.scenario, args.output, seed=args.seed, **options)
    labels_path = args.labels or args.output.with_suffix(".labels.json")
    write_labels(labels, labels_path)
    print(f"wrote {args.output} and {labels_path} ({len(labels.calls)} calls)", file=sys.stderr)
    return 0

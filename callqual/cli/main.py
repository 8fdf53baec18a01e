"""The ``callqual`` command: one entry point, one subcommand per job."""

import argparse
import sys
from collections.abc import Sequence

from callqual import __version__
from callqual.cli import alerter, analyze, collector, detector, evaluate, simulate, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callqual",
        description="VoIP call quality and anomaly detection: SIP/RTP analysis, rules, learned model.",
    )
    parser.add_argument("--version", action="version", version=f"callqual {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    analyze.add_parser(sub)
    simulate.add_parser(sub)
    collector.add_parser(sub)
    detector.add_parser(sub)
    alerter.add_parser(sub)
    train.add_parser(sub)
    evaluate.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        print("callqual: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())

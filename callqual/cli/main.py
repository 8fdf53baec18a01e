"""The ``callqual`` command: one entry point, one subcommand per job."""

import argparse
import importlib
import sys
from collections.abc import Sequence

from callqual import __version__

#: Subcommand -> module with ``add_parser(sub)``. Imported on demand: the services pull in
#: Kafka, HTTP and Prometheus clients that ``callqual analyze`` has no use for, and start-up
#: time is part of what a user waits for on every run.
COMMANDS = {
    "analyze": "callqual.cli.analyze",
    "simulate": "callqual.cli.simulate",
    "collector": "callqual.cli.collector",
    "detector": "callqual.cli.detector",
    "alerter": "callqual.cli.alerter",
    "train": "callqual.cli.train",
    "evaluate": "callqual.cli.evaluate",
    "calls": "callqual.cli.calls",
    "store": "callqual.cli.store",
    "ui": "callqual.cli.ui",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with ``only`` that one (what a run needs)."""
    parser = argparse.ArgumentParser(
        prog="callqual",
        description="VoIP call quality and anomaly detection: SIP/RTP analysis, rules, learned model.",
    )
    parser.add_argument("--version", action="version", version=f"callqual {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(first if first in COMMANDS else None).parse_args(argv)
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

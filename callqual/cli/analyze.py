"""``callqual analyze``: the embedded pipeline on one capture file.

Exit codes say what happened, so scripts can tell "bad calls" from "bad input":

* 0 - the whole capture was analysed (problems in the calls are in the report, not the exit code)
* 3 - the input could not be read at all (missing file, not a pcap/pcapng)
* 4 - the capture was truncated: what was readable is analysed and reported
"""

import argparse
import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from callqual.cli.text_report import render
from callqual.collector.capture.pcap_file import CaptureFile, open_capture
from callqual.collector.config import CollectorConfig
from callqual.collector.errors import CaptureFormatError
from callqual.pipeline.embedded import EmbeddedPipeline

EXIT_OK = 0
EXIT_UNREADABLE = 3
EXIT_TRUNCATED = 4


class AnalyzeSettings(BaseSettings):
    """Settings of ``callqual analyze``: flags override ``CALLQUAL_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CALLQUAL_", frozen=True)

    format: str = Field(default="text", pattern="^(text|json)$")
    heuristic_rtp: bool = False
    progress: bool = True


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "analyze",
        help="analyse a pcap/pcapng capture: calls, RTP streams, alerts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("capture", type=Path, nargs="?", help="pcap or pcapng file (none with --interface)")
    live = p.add_argument_group("live capture (needs CAP_NET_RAW and CAP_NET_ADMIN)")
    live.add_argument("--interface", "-i", help="capture live from this interface instead of a file")
    live.add_argument("--duration", type=float, help="seconds to capture (default: until SIGTERM/Ctrl-C)")
    live.add_argument("--bpf", help="kernel capture filter (default: SIP, RTP/RTCP ports, IP fragments)")
    p.add_argument("--format", choices=["text", "json"], default=None, help="output format (default text)")
    p.add_argument(
        "--heuristic-rtp",
        action="store_true",
        default=None,
        help="also track RTP that no SDP in the capture announced",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("-o", "--output", type=Path, help="write the report here instead of stdout")
    p.add_argument("--model", type=Path, help="also score calls with this model (callqual train)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.format is not None:
        overrides["format"] = args.format
    if args.heuristic_rtp:
        overrides["heuristic_rtp"] = True
    if args.no_progress:
        overrides["progress"] = False
    settings = AnalyzeSettings(**overrides)  # type: ignore[arg-type]
    scorer = None
    if args.model is not None:
        from callqual.cli.train import load_model_or_exit
        from callqual.detector.model import ModelScorer

        model = load_model_or_exit(args.model)
        if model is None:
            return EXIT_UNREADABLE
        scorer = ModelScorer(model)
    pipeline = EmbeddedPipeline(CollectorConfig(heuristic_rtp=settings.heuristic_rtp), scorer=scorer)
    if args.interface is not None:
        return _run_live(args, pipeline, settings.format)
    if args.capture is None:
        print("callqual: analyze needs a capture file or --interface", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        capture = open_capture(args.capture)
    except FileNotFoundError:
        print(f"callqual: {args.capture}: no such file", file=sys.stderr)
        return EXIT_UNREADABLE
    except IsADirectoryError:
        print(f"callqual: {args.capture}: is a directory", file=sys.stderr)
        return EXIT_UNREADABLE
    except PermissionError:
        print(f"callqual: {args.capture}: permission denied", file=sys.stderr)
        return EXIT_UNREADABLE
    except CaptureFormatError as exc:
        what = f": {exc.detail}" if exc.reason == "capture.other_format" else ""
        print(f"callqual: {args.capture}: not a readable capture ({exc.reason}){what}", file=sys.stderr)
        return EXIT_UNREADABLE
    with capture:
        show = settings.progress and sys.stderr.isatty()
        if show:
            _run_with_progress(pipeline, capture)
        else:
            pipeline.run(capture)
        pipeline.finish()
        report = pipeline.report(str(args.capture), capture.truncated, capture.errors)
    text = report.model_dump_json(indent=2) + "\n" if settings.format == "json" else render(report)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if capture.truncated:
        print(f"callqual: {args.capture}: capture truncated; analysed what was readable", file=sys.stderr)
        return EXIT_TRUNCATED
    return EXIT_OK


def _run_with_progress(pipeline: EmbeddedPipeline, capture: CaptureFile) -> None:
    from tqdm import tqdm

    feed = pipeline.collector.feed
    with tqdm(total=capture.size, unit="B", unit_scale=True, file=sys.stderr, desc="analyze") as bar:
        done = 0
        for i, frame in enumerate(capture, 1):
            feed(frame)
            if i % 4096 == 0:
                bar.update(capture.bytes_read - done)
                done = capture.bytes_read
        bar.update(capture.bytes_read - done)


def _run_live(args: argparse.Namespace, pipeline: EmbeddedPipeline, fmt: str) -> int:
    """``--interface``: a quick look at live traffic; the report covers what was captured."""
    from callqual.collector.capture.live import LiveCapture, LiveCaptureError
    from callqual.pipeline.live import run_live

    capture = LiveCapture(args.interface, bpf=args.bpf, duration=args.duration)
    try:
        capture.open()
    except LiveCaptureError as exc:
        print(f"callqual: cannot capture on {exc} (needs CAP_NET_RAW, CAP_NET_ADMIN)", file=sys.stderr)
        return EXIT_UNREADABLE
    # Tells the user (and scripts) that packets are being captured now; the report follows at the end.
    print(f"callqual: capturing on {args.interface}; SIGTERM or Ctrl-C ends it", file=sys.stderr, flush=True)
    with capture:
        run_live(pipeline, capture)
    report = pipeline.report(f"live:{args.interface}")
    text = report.model_dump_json(indent=2) + "\n" if fmt == "json" else render(report)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK

"""``callqual analyze``: the embedded pipeline on one capture file.

Exit codes say what happened, so scripts can tell "bad calls" from "bad input":

* 0 - the whole capture was analysed (problems in the calls are in the report, not the exit code)
* 3 - the input could not be read at all (missing file, not a pcap/pcapng)
* 4 - the capture was truncated: what was readable is analysed and reported
* 5 - ``--store``: the call store could not be opened or written (the report is still printed)
* 6 - the report could not be written where ``-o`` points (a directory, no permission, disk full)
"""

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from callqual.cli.gc_tuning import spare_the_exit_collection, tune_gc_for_throughput
from callqual.cli.text_report import render
from callqual.collector.capture.pcap_file import CaptureFile, open_capture
from callqual.collector.config import CollectorConfig
from callqual.collector.errors import CaptureFormatError
from callqual.detector.detector import CallScorer
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.report_json import write_report_json
from callqual.pipeline.split import SplitPipelineError, run_split, split_pays
from callqual.schemas import AnalysisReport

if TYPE_CHECKING:
    from callqual.store.embedded import StoringPipeline

EXIT_OK = 0
EXIT_USAGE = 2  # as argparse: options that cannot go together
EXIT_UNREADABLE = 3
EXIT_TRUNCATED = 4
EXIT_STORE = 5
EXIT_OUTPUT = 6


class ReportWriteError(Exception):
    """The report could not be written to ``-o``: an output problem, told apart from bad input."""


class AnalyzeSettings(BaseSettings):
    """Settings of ``callqual analyze``: flags override ``CALLQUAL_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CALLQUAL_", frozen=True)

    format: str = Field(default="text", pattern="^(text|json)$")
    heuristic_rtp: bool = False
    progress: bool = True
    #: ``--store``: sqlite:///path.db or postgresql://user:password@host/db (a secret: it may hold a password)
    store_url: SecretStr | None = None
    max_messages_per_call: int = Field(default=500, ge=1)
    #: ``--store``: after storing, drop what is older than this many whole days (by the wall clock)
    retention_days: int | None = Field(default=None, ge=1)
    #: ``--workers``: collector processes sharing a capture file's RTP (1: all in this process)
    workers: int = Field(default=1, ge=1, le=64)
    #: ``--split``/``--no-split``: the collector in a second process (a capture file on two cores;
    #: pipeline/split.py); None: whenever that pays (``split_pays``: a file, two free CPUs, no --workers)
    split: bool | None = None


#: ``analyze -``: a capture piped in (``tcpdump -w - ... | callqual analyze -``)
STDIN = Path("/dev/stdin")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "analyze",
        help="analyse a pcap/pcapng capture: calls, RTP streams, alerts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "capture",
        type=Path,
        nargs="?",
        help="pcap or pcapng file, - for standard input (none with --interface)",
    )
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
    p.add_argument(
        "--store",
        metavar="URL",
        help="also keep calls, streams, alerts and SIP messages in this store "
        "(sqlite:///calls.db or postgresql://...; env CALLQUAL_STORE_URL)",
    )
    p.add_argument(
        "--max-messages-per-call",
        type=int,
        help="SIP messages stored per Call-ID; the rest are counted (default 500)",
    )
    p.add_argument(
        "--retention-days",
        type=int,
        metavar="N",
        help="with --store: then remove what is older than N whole days (UTC midnight)",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="split a capture file's RTP analysis over N processes, one per core; the report is "
        "the same (default 1; env CALLQUAL_WORKERS)",
    )
    p.add_argument(
        "--split",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decode in a second process while this one detects: a file analysed on two cores, the "
        "same report (default: on for a capture file of 1 MiB or more when two CPUs are free and "
        "--workers is not given; --no-split: one process; env CALLQUAL_SPLIT)",
    )
    p.set_defaults(func=run)


def _workers(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"{text}: between 1 and 64")
    return n


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.format is not None:
        overrides["format"] = args.format
    if args.heuristic_rtp:
        overrides["heuristic_rtp"] = True
    if args.no_progress:
        overrides["progress"] = False
    if args.store is not None:
        overrides["store_url"] = args.store
    if args.max_messages_per_call is not None:
        overrides["max_messages_per_call"] = args.max_messages_per_call
    if args.retention_days is not None:
        overrides["retention_days"] = args.retention_days
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.split is not None:
        overrides["split"] = args.split
    settings = AnalyzeSettings(**overrides)  # type: ignore[arg-type]
    tune_gc_for_throughput()
    scorer = None
    if args.model is not None:
        from callqual.cli.train import load_model_or_exit
        from callqual.detector.model import ModelScorer

        model = load_model_or_exit(args.model)
        if model is None:
            return EXIT_UNREADABLE
        scorer = ModelScorer(model)
    # Each SIP message's bytes are for the store; a report alone never reads them.
    keep_raw = settings.store_url is not None
    collector_config = CollectorConfig(heuristic_rtp=settings.heuristic_rtp, keep_sip_raw=keep_raw)
    storing: StoringPipeline | None = None
    if settings.store_url is not None:
        storing = _storing_pipeline(settings, collector_config, scorer)
        if storing is None:
            return EXIT_STORE
        pipeline = storing.pipeline
    else:
        # A file's JSON report is only written out: finished records kept as their JSON (issue 14).
        compact = settings.format == "json" and args.interface is None
        pipeline = EmbeddedPipeline(collector_config, scorer=scorer, compact_outputs=compact)
    try:
        if storing is None:
            return _analyze(args, settings, pipeline, None)
        return _analyze_storing(args, settings, pipeline, storing)
    except ReportWriteError as exc:
        print(f"callqual: cannot write the report to {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    finally:
        spare_the_exit_collection()


def _analyze_storing(
    args: argparse.Namespace,
    settings: "AnalyzeSettings",
    pipeline: EmbeddedPipeline,
    storing: "StoringPipeline",
) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return _analyze(args, settings, pipeline, storing)
    except SQLAlchemyError as exc:
        print(f"callqual: the store could not be written: {_store_error(exc)}", file=sys.stderr)
        return EXIT_STORE
    finally:
        storing.close()
        storing.writer.engine.dispose()


def _storing_pipeline(
    settings: AnalyzeSettings, collector_config: CollectorConfig, scorer: CallScorer | None
) -> "StoringPipeline | None":
    """The pipeline that also writes to ``--store``; None (reported) when the store cannot be opened."""
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from callqual.store.embedded import StoringPipeline
    from callqual.store.engine import StoreUrlError, open_store
    from callqual.store.writer import StoreWriter

    assert settings.store_url is not None
    try:
        engine = open_store(settings.store_url.get_secret_value())
    except (StoreUrlError, ArgumentError) as exc:
        print(f"callqual: --store: {exc}", file=sys.stderr)
        return None
    except SQLAlchemyError as exc:
        print(f"callqual: the store could not be opened: {_store_error(exc)}", file=sys.stderr)
        return None
    writer = StoreWriter(engine, settings.max_messages_per_call)
    return StoringPipeline(writer, collector_config, scorer=scorer)


def _store_error(exc: Exception) -> str:
    """The driver's own message, first line only: never the statement's parameters or the URL."""
    origin = getattr(exc, "orig", None) or exc
    return str(origin).strip().splitlines()[0] if str(origin).strip() else type(origin).__name__


def _analyze(
    args: argparse.Namespace,
    settings: AnalyzeSettings,
    pipeline: EmbeddedPipeline,
    storing: "StoringPipeline | None",
) -> int:
    if args.interface is not None:
        if settings.workers > 1:
            print("callqual: --workers applies to capture files; a live capture runs in one", file=sys.stderr)
        return _run_live(args, pipeline, settings.format, storing, split=settings.split is True)
    if args.capture is None:
        print("callqual: analyze needs a capture file or --interface", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        capture = open_capture(STDIN if args.capture == Path("-") else args.capture)
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
        if settings.workers > 1 and settings.split:
            print("callqual: --workers and --split are two ways to use more cores: pick one", file=sys.stderr)
            return EXIT_USAGE
        if settings.workers > 1 and not capture.seekable:
            print(
                f"callqual: {args.capture}: --workers reads the capture once per worker: not a pipe",
                file=sys.stderr,
            )
            return EXIT_USAGE
        split = settings.split if settings.split is not None else split_pays(capture.size, settings.workers)
        if settings.workers > 1:
            from callqual.pipeline.sharded import ShardWorkerError, run_sharded

            try:
                run_sharded(pipeline, capture, pipeline.collector.config, settings.workers)
            except ShardWorkerError as exc:
                print(f"callqual: {args.capture}: --workers: {exc}", file=sys.stderr)
                return EXIT_UNREADABLE
            truncated, errors = capture.truncated, capture.errors
        elif split:
            try:
                truncated, errors = _split_with_progress(pipeline, capture, show)
            except SplitPipelineError as exc:
                print(f"callqual: {args.capture}: --split: {exc}", file=sys.stderr)
                return EXIT_UNREADABLE
        else:
            if show:
                _run_with_progress(pipeline, capture)
            else:
                pipeline.run(capture)
            truncated, errors = capture.truncated, capture.errors
        pipeline.finish()
        if storing is None and settings.format == "json":
            source = str(args.capture)
            _write_json(args, lambda out: pipeline.write_json_report(out, source, truncated, errors))
        else:
            report = pipeline.report(str(args.capture), truncated, errors)
            _print(args, settings.format, report)
            if storing is not None:
                _store(storing, report, settings.retention_days)
    if truncated:
        print(f"callqual: {args.capture}: capture truncated; analysed what was readable", file=sys.stderr)
        return EXIT_TRUNCATED
    return EXIT_OK


def _run_with_progress(pipeline: EmbeddedPipeline, capture: CaptureFile) -> None:
    from tqdm import tqdm

    feed = pipeline.collector.feed
    with tqdm(total=capture.size or None, unit="B", unit_scale=True, file=sys.stderr, desc="analyze") as bar:
        done = 0
        for i, frame in enumerate(capture, 1):
            feed(frame)
            if i % 4096 == 0:
                bar.update(capture.bytes_read - done)
                done = capture.bytes_read
        bar.update(capture.bytes_read - done)


def _split_with_progress(
    pipeline: EmbeddedPipeline, capture: CaptureFile, show: bool
) -> tuple[bool, Counter[str]]:
    """``run_split``, with the bar following how far the collector process has read."""
    if not show:
        return run_split(pipeline, capture)
    from tqdm import tqdm

    with tqdm(total=capture.size or None, unit="B", unit_scale=True, file=sys.stderr, desc="analyze") as bar:

        def progress(bytes_read: int) -> None:
            bar.update(bytes_read - bar.n)

        result = run_split(pipeline, capture, progress)
        if capture.size:  # a pipe's size is unknown: the bar counts bytes without a total
            bar.update(capture.size - bar.n)
        return result


def _write_json(args: argparse.Namespace, write: Callable[[BinaryIO], None]) -> None:
    """Record by record, as UTF-8 bytes: the report of 30,000 calls is ~100 MB (report_json)."""
    if args.output:
        try:
            with args.output.open("wb") as out:
                write(out)
        except OSError as exc:
            raise ReportWriteError(f"{args.output}: {exc.strerror or exc}") from exc
    else:
        sys.stdout.flush()
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()


def _print(args: argparse.Namespace, fmt: str, report: AnalysisReport) -> None:
    if fmt == "json":
        _write_json(args, lambda out: write_report_json(report, out))
        return
    text = render(report)
    if args.output:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ReportWriteError(f"{args.output}: {exc.strerror or exc}") from exc
    else:
        sys.stdout.write(text)


def _store(storing: "StoringPipeline", report: AnalysisReport, retention_days: int | None = None) -> None:
    stats = storing.store(report).stats
    dropped = f", {stats.messages_dropped} over the per-call bound not kept" if stats.messages_dropped else ""
    print(
        f"callqual: stored {report.summary.calls} calls, {report.summary.streams} streams, "
        f"{report.summary.alerts} alerts, {stats.messages_stored} new SIP messages{dropped}",
        file=sys.stderr,
    )
    if retention_days is not None:
        from datetime import UTC, datetime

        from callqual.store.retention import apply_retention

        result = apply_retention(storing.writer.engine, datetime.now(UTC), retention_days)
        print(f"callqual: store keeps rows from {result.cutoff.isoformat()} on", file=sys.stderr)


def _run_live(
    args: argparse.Namespace,
    pipeline: EmbeddedPipeline,
    fmt: str,
    storing: "StoringPipeline | None" = None,
    *,
    split: bool = False,
) -> int:
    """``--interface``: a quick look at live traffic; the report covers what was captured.

    ``split`` (``--split``, not the default here): capture and collector in a child process
    (``pipeline/live_split.py``), for floods that one process cannot follow.
    """
    from callqual.collector.capture.live import LiveCapture, LiveCaptureError
    from callqual.pipeline.live import run_live
    from callqual.pipeline.live_split import LiveSplit, run_live_split

    capture = LiveCapture(args.interface, bpf=args.bpf, duration=args.duration)
    runner = LiveSplit(pipeline, capture) if split else None
    try:
        capture.open() if runner is None else runner.open()
    except LiveCaptureError as exc:
        print(f"callqual: cannot capture on {exc} (needs CAP_NET_RAW, CAP_NET_ADMIN)", file=sys.stderr)
        return EXIT_UNREADABLE
    # Tells the user (and scripts) that packets are being captured now; the report follows at the end.
    print(f"callqual: capturing on {args.interface}; SIGTERM or Ctrl-C ends it", file=sys.stderr, flush=True)
    if runner is None:
        with capture:
            run_live(pipeline, capture)
    else:
        try:
            run_live_split(runner)
        except SplitPipelineError as exc:
            print(f"callqual: {args.interface}: --split: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
        pipeline.finish()
    report = pipeline.report(f"live:{args.interface}")
    _print(args, fmt, report)
    if storing is not None:
        _store(storing, report, args.retention_days)
    return EXIT_OK

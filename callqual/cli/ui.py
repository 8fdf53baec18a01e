"""``callqual ui``: the web UI over a call store, or over one capture.

    callqual ui --store sqlite:///calls.db           # a store the services or `analyze --store` fill
    callqual ui capture.pcap                         # analysed into a temporary SQLite store first
    callqual ui --interface eth1                     # live capture into a temporary SQLite store

Binds 127.0.0.1 by default. Any other --host needs CALLQUAL_UI_TOKEN (bearer token for
/api, login form for browsers) and refuses to start without it. Settings also come from
CALLQUAL_UI_* variables (CALLQUAL_UI_STORE_URL, CALLQUAL_UI_PORT, ...).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

log = logging.getLogger("callqual.ui")

#: Exit code when the settings are refused (e.g. a public address without a token)
EXIT_BAD_SETTINGS = 2
#: Exit code when the capture cannot be read (as ``callqual analyze``)
EXIT_BAD_INPUT = 3


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ui",
        help="serve the web UI: error log, call search, SIP ladders, pcap export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "capture", nargs="?", type=Path, help="analyse this capture into a temporary store and serve it"
    )
    p.add_argument("--store", help="call store URL (sqlite:///path.db or postgresql://...)")
    p.add_argument("--interface", metavar="IF", help="capture IF live into a temporary store (CAP_NET_RAW)")
    p.add_argument("--bpf", help="capture filter for --interface (default: SIP and RTP)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1; others need CALLQUAL_UI_TOKEN)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from callqual.ui.settings import UiSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if sum(x is not None for x in (args.capture, args.store, args.interface)) != 1:
        print("callqual ui: give one of a capture file, --store URL or --interface IF", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    overrides: dict[str, object] = {
        k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None
    }
    with tempfile.TemporaryDirectory(prefix="callqual-ui-") as tmp:
        if args.store is None:
            url = f"sqlite:///{Path(tmp) / 'calls.db'}"
            overrides |= {"store_url": url, "overview_hours": None}
        else:
            overrides["store_url"] = args.store
        try:
            settings = UiSettings(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            print(f"callqual ui: {exc.errors()[0]['msg']}", file=sys.stderr)
            return EXIT_BAD_SETTINGS
        if args.capture is not None:
            code = _fill_from_capture(args.capture, settings.store_url)
            if code:
                return code
        if args.interface is not None:
            return _serve_live(settings, args.interface, args.bpf)
        return _serve(settings)


def _fill_from_capture(capture: Path, url: str) -> int:
    from callqual.collector.errors import CaptureFormatError
    from callqual.store.embedded import analyze_into_store

    log.info("analysing %s into a temporary store", capture)
    try:
        stored = analyze_into_store(capture, url)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"callqual ui: {capture}: {exc.strerror or 'cannot read'}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CaptureFormatError as exc:
        print(f"callqual ui: {capture}: not a readable capture ({exc.reason})", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = stored.report.summary
    print(f"callqual ui: {summary.calls} calls, {summary.alerts} alerts from {capture}", flush=True)
    return 0


def _serve_live(settings: object, interface: str, bpf: str | None) -> int:
    """Capture in a thread into the store while the UI serves it; stopping the UI stops the capture."""
    import threading

    from callqual.collector.capture.live import LiveCapture, LiveCaptureError
    from callqual.store.engine import open_store
    from callqual.store.writer import StoreWriter
    from callqual.ui.app import create_app
    from callqual.ui.live_store import LiveStorer
    from callqual.ui.server import UiServer
    from callqual.ui.settings import UiSettings

    assert isinstance(settings, UiSettings)
    capture = LiveCapture(interface, bpf=bpf)
    try:
        capture.open()
    except LiveCaptureError as exc:
        print(f"callqual ui: cannot capture on {exc} (needs CAP_NET_RAW, CAP_NET_ADMIN)", file=sys.stderr)
        return EXIT_BAD_INPUT
    engine = open_store(settings.store_url)
    storer = LiveStorer(StoreWriter(engine))
    with capture:
        consumer = threading.Thread(target=storer.run, args=(capture,), name="live-capture")
        consumer.start()
        server = UiServer(create_app(settings, engine), settings.host, settings.port)
        print(f"callqual ui: capturing on {interface}", flush=True)
        print(f"callqual ui: serving http://{settings.host}:{settings.port}/", flush=True)
        try:
            server.run()
        finally:
            capture.stop()
            consumer.join()
    engine.dispose()
    if storer.dropped:
        print(f"callqual ui: rows not stored: {dict(storer.dropped)}", file=sys.stderr)
    return 0


def _serve(settings: object) -> int:
    from callqual.ui.app import create_app
    from callqual.ui.server import UiServer
    from callqual.ui.settings import UiSettings

    assert isinstance(settings, UiSettings)
    server = UiServer(create_app(settings), settings.host, settings.port)
    print(f"callqual ui: serving http://{settings.host}:{settings.port}/", flush=True)
    server.run()
    return 0

"""``callqual collector`` end to end: open the source, connect to the broker, run, and the exit code.

The capture module is imported only for the source asked for (a file, or a
live interface, whose module needs libpcap), so a file replay works where
live capture is not installed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from callqual.collector.packet import Frame
from callqual.collector.service.runner import CollectorService
from callqual.collector.service.settings import (
    EXIT_FATAL,
    EXIT_OK,
    EXIT_TRUNCATED,
    EXIT_UNREADABLE,
    EXIT_USAGE,
    CollectorServiceSettings,
)
from callqual.pipeline.stop_signals import stop_on_signals

log = logging.getLogger("callqual.collector.service")


def open_source(settings: CollectorServiceSettings) -> AbstractContextManager[Any]:
    """The capture file, or the live interface (whose module is imported only when asked for)."""
    if settings.pcap is not None:
        from callqual.collector.capture.pcap_file import open_capture

        return open_capture(settings.pcap)
    if settings.interface is None:
        raise ValueError("a capture source is needed: --pcap FILE or --interface IF")
    try:
        live = importlib.import_module("callqual.collector.capture.live")
    except ImportError as exc:
        raise LiveCaptureUnavailableError(
            "live capture is not available in this installation "
            f"(callqual.collector.capture.live: {exc}); use --pcap FILE"
        ) from exc
    capture: AbstractContextManager[Any] = live.LiveCapture(settings.interface)
    return capture


def frames_of(source: Any, service: CollectorService) -> Iterable[Frame]:
    """A file iterates its frames; a live capture reports its own losses to the collector.

    Packets the sniffer dropped were on the wire: the core marks the streams
    live at the time ``unreliable`` so their "loss" is not blamed on the network.
    """
    frames = getattr(source, "frames", None)
    if frames is None:
        it: Iterable[Frame] = source
        return it
    service.on_stop = source.stop
    collector = service.collector

    def on_loss(loss: Any) -> None:
        collector.note_capture_loss(loss.ts, loss.dropped, loss.reason, loss.since)

    live_frames: Iterable[Frame] = frames(on_loss=on_loss)
    return live_frames


class LiveCaptureUnavailableError(RuntimeError):
    pass


def serve(settings: CollectorServiceSettings) -> int:
    """The whole ``callqual collector`` run: connect, capture, finish, flush; the exit code."""
    from callqual.collector.errors import CaptureFormatError
    from callqual.transport.base import TransportError

    service = CollectorService(settings)
    # The capture loop ends; the run still finishes the collector and flushes.
    stop_on_signals(service.stop)
    if settings.metrics_port is not None:
        port = service.start_metrics(settings.metrics_host, settings.metrics_port)
        log.info("serving metrics", extra={"host": settings.metrics_host, "port": port})
    try:
        source = open_source(settings)
    except (FileNotFoundError, IsADirectoryError, PermissionError, CaptureFormatError) as exc:
        log.error("capture not readable", extra={"source": str(settings.pcap), "error": str(exc)})
        return EXIT_UNREADABLE
    except (LiveCaptureUnavailableError, ValueError) as exc:
        log.error(str(exc))
        return EXIT_USAGE
    try:
        opened = source.__enter__()
    except Exception as exc:  # the interface could not be opened (missing, no permission, bad filter)
        log.error("capture not readable", extra={"source": settings.interface, "error": str(exc)})
        return EXIT_UNREADABLE
    try:
        try:
            service.connect()
        except (TransportError, Exception) as exc:  # any failure to reach the broker is fatal here
            log.error("cannot reach kafka", extra={"error": str(exc)})
            return EXIT_FATAL
        code = service.run(frames_of(opened, service))
        if code == EXIT_OK and getattr(opened, "truncated", False):
            code = EXIT_TRUNCATED
    finally:
        source.__exit__(None, None, None)
    return code

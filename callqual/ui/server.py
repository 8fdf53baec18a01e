"""Serving the app with uvicorn, so that open live feeds end when the server stops.

Uvicorn waits for open connections before it stops, and an event stream never closes by
itself: on SIGTERM/Ctrl-C (or :meth:`UiServer.stop`) the app's ``stopping`` event is set
first, every stream ends at its next poll, and the shutdown is clean and quick.
"""

import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI


class UiServer(uvicorn.Server):
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        super().__init__(
            uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
        )
        self.stopping: threading.Event = app.state.stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A stop request, not a crash: exit 0 (uvicorn would re-raise the signal after shutdown)."""
        self.stopping.set()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C
        self.should_exit = True

    def stop(self) -> None:
        """From another thread: end the live feeds, then the server."""
        self.stopping.set()
        self.should_exit = True

"""``/metrics`` (Prometheus text format) and ``/healthz`` for any service, on a thread.

The exposition itself is prometheus_client's pure ``generate_latest(registry)``;
this module only serves it, so every service shows one vocabulary the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from callqual.observability.metrics import AlerterMetrics


class HasRegistry(Protocol):
    """Anything whose metrics live in one registry (the alerter's, the store service's)."""

    @property
    def registry(self) -> CollectorRegistry: ...


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/healthz`` on a loopback or any address."""

    def __init__(
        self,
        metrics: HasRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path == "/healthz":
                    ok = healthy()
                    self._send(200 if ok else 503, "text/plain", b"ok\n" if ok else b"stalled\n")
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None  # scrapes every 15 s would drown the real log lines

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(host: str, port: int) -> tuple[AlerterMetrics, MetricsServer]:
    """A fresh registry of the project's metrics, served on ``host:port`` (0: any free port).

    What the collector and detector services call for their ``--metrics-port``: the same
    metric names as the alerter's, so the dashboards need one vocabulary.
    """
    metrics = AlerterMetrics()
    return metrics, MetricsServer(metrics, host, port).start()

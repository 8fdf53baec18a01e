"""SIGTERM/SIGINT as a request to stop cleanly, for every long-running service.

A supervisor (systemd, Docker) stops a service with SIGTERM; the service must
then finish what it holds (open calls, stream reports, queued messages) rather
than die mid-write. Each service passes its own ``stop``; the loop it runs
notices and winds down.
"""

import logging
import signal
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


def stop_on_signals(stop: Callable[[], None]) -> None:
    """Call ``stop`` on SIGTERM or SIGINT (main thread only, as Python requires)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received, stopping", extra={"signal": signal.Signals(signum).name})
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

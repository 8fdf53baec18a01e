"""A real Kafka broker for the test session, wherever the tests run.

Order of preference:

1. ``KAFKA_BOOTSTRAP_SERVERS`` is set: use that broker (CI that started one,
   a developer's running cluster). Nothing is started or stopped.
2. A Docker engine answers: testcontainers' Kafka module (KRaft).
3. Otherwise: ``deploy/kafka/kafka-local.sh`` installs Kafka from Maven Central
   and starts a single KRaft node on free loopback ports, stopped at the end.

Kafka tests are never skipped: a transport bug that only shows on a real broker
is exactly what they exist to catch, so a missing broker fails the session with
the reason instead of turning it silently green.
"""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = REPO_ROOT / "deploy" / "kafka" / "kafka-local.sh"
#: Confluent Platform 8.0 is Apache Kafka 4.0, the first 4.x image the module's KRaft setup accepts
DEFAULT_IMAGE = "confluentinc/cp-kafka:8.0.0"
#: Maven install on a cold cache plus broker start; a warm start takes ~5-10 s
LOCAL_START_TIMEOUT_S = 600


@dataclass
class Broker:
    bootstrap: str
    #: How it was obtained: printed (see the captured setup output) so a failure says which broker it met
    origin: str
    stop: Callable[[], None]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def docker_answers(timeout: float = 2.0) -> tuple[bool, str]:
    """Whether a Docker engine responds, and why not; never raises."""
    docker_host = os.environ.get("DOCKER_HOST", "")
    if not docker_host and not Path("/var/run/docker.sock").exists():
        return False, "DOCKER_HOST unset and no /var/run/docker.sock"
    # A failed connect leaks the SDK's socket; the ResourceWarning it raises
    # when collected would fail the session under filterwarnings=error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker  # type: ignore[import-untyped, unused-ignore]

            client = docker.from_env(version="auto", timeout=max(int(timeout), 1))
            try:
                ok = bool(client.ping())
            finally:
                client.close()
        except Exception as exc:  # any failure means "no usable engine"
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            gc.collect()
    return ok, "ping ok" if ok else "ping returned false"


def _start_testcontainer() -> Broker:
    from testcontainers.community.kafka import KafkaContainer

    image = os.environ.get("CALLQUAL_KAFKA_IMAGE", DEFAULT_IMAGE)
    container = KafkaContainer(image).with_kraft()
    container.start(timeout=120)
    return Broker(
        bootstrap=container.get_bootstrap_server(),
        origin=f"testcontainers ({image})",
        stop=container.stop,
    )


def _run_script(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KAFKA_LOCAL), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_local_broker(run_dir: Path, extra_env: dict[str, str] | None = None) -> Broker:
    """Start a throwaway broker with kafka-local.sh on free ports under ``run_dir``.

    ``extra_env``: more of the script's settings (e.g. its SASL_SSL listener).
    """
    port, controller_port = _free_port(), _free_port()
    while controller_port == port:
        controller_port = _free_port()
    env = {
        **os.environ,
        "CALLQUAL_KAFKA_PORT": str(port),
        "CALLQUAL_KAFKA_CONTROLLER_PORT": str(controller_port),
        "CALLQUAL_KAFKA_RUN_DIR": str(run_dir),
        **(extra_env or {}),
    }
    # Two cores shared with the test session itself: allow a slow JVM start.
    env.setdefault("CALLQUAL_KAFKA_START_TIMEOUT", "120")
    t0 = time.monotonic()
    started = _run_script(["start", "--fresh"], env, LOCAL_START_TIMEOUT_S)
    if started.returncode != 0:
        raise RuntimeError(
            f"kafka-local.sh start failed (exit {started.returncode}):\n{started.stderr[-4000:]}"
        )
    elapsed = time.monotonic() - t0

    def stop() -> None:
        stopped = _run_script(["stop"], env, 90)
        if stopped.returncode != 0:
            raise RuntimeError(f"kafka-local.sh stop failed:\n{stopped.stderr[-2000:]}")

    return Broker(
        bootstrap=f"127.0.0.1:{port}",
        origin=f"local kafka-local.sh broker, ready in {elapsed:.1f}s, run dir {run_dir}",
        stop=stop,
    )


def obtain_broker(run_dir: Path) -> Broker:
    """The first broker available in the documented order; raises with every reason if none."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if configured:
        return Broker(configured, "KAFKA_BOOTSTRAP_SERVERS", lambda: None)
    reasons: list[str] = []
    ok, why = docker_answers()
    if ok:
        try:
            return _start_testcontainer()
        except Exception as exc:
            reasons.append(f"testcontainers: {type(exc).__name__}: {exc}")
    else:
        reasons.append(f"docker: {why}")
    try:
        return start_local_broker(run_dir)
    except Exception as exc:
        reasons.append(f"kafka-local.sh: {type(exc).__name__}: {exc}")
    raise RuntimeError("no Kafka broker could be had:\n" + "\n".join(reasons))


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real broker, shared by the whole session."""
    broker: Broker | None = None
    reason = ""
    try:
        broker = obtain_broker(tmp_path_factory.mktemp("kafka"))
    except Exception as exc:
        reason = str(exc)
    if broker is None:
        # Outside the except block, so the report shows the reasons, not a traceback chain.
        pytest.fail(reason, pytrace=False)
    print(f"kafka broker: {broker.bootstrap} from {broker.origin}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    """``bootstrap.servers`` of the session's broker: what most tests need."""
    return kafka_broker.bootstrap

"""Collector -> detector -> alerter through a SASL_SSL listener (SCRAM-SHA-512 over TLS).

The test makes its own certificate authority and broker certificate with openssl, starts a
broker of its own with kafka-local.sh's SASL_SSL listener, and runs the three services as
subprocesses configured only through ``CALLQUAL_KAFKA_*``, as a deployment would. The
password must appear in no service log and on no ``/metrics`` page.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from callqual.pipeline.embedded import analyze_file
from callqual.simulator import simulate
from callqual.transport.base import TransportError
from callqual.transport.kafka import ensure_service_topics
from callqual.transport.settings import KafkaSettings
from tests.kafka_broker import _free_port, start_local_broker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

USER = "callqual-svc"


@dataclass(frozen=True)
class SecuredBroker:
    bootstrap: str
    ca: Path
    password: str

    def env(self, prefix: str, password: str | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "CALLQUAL_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "CALLQUAL_KAFKA_TOPIC_PREFIX": prefix,
            "CALLQUAL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CALLQUAL_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "CALLQUAL_KAFKA_SASL_USERNAME": USER,
            "CALLQUAL_KAFKA_SASL_PASSWORD": password or self.password,
            "CALLQUAL_KAFKA_SSL_CA_LOCATION": str(self.ca),
            "CALLQUAL_KAFKA_PARTITIONS": "3",
        }

    def settings(self, password: str) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=USER,
            sasl_password=SecretStr(password),
            ssl_ca_location=str(self.ca),
        )


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(d: Path, keystore_password: str) -> tuple[Path, Path]:
    """A throwaway CA, and a broker certificate for 127.0.0.1 it signed, as PKCS12; (ca.pem, p12)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "1", "-subj", "/CN=callqual test CA", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.pem", "-days", "1", "-extfile", "san.ext", cwd=d)  # fmt: skip
    _openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-out", "broker.p12",
             "-passout", f"pass:{keystore_password}", cwd=d)  # fmt: skip
    return d / "ca.pem", d / "broker.p12"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    d = tmp_path_factory.mktemp("sasl")
    keystore_password = secrets.token_urlsafe(12)
    password = secrets.token_urlsafe(18)
    ca, keystore = make_certificates(d, keystore_password)
    (d / "keystore.pw").write_text(keystore_password)
    (d / "scram.pw").write_text(password)
    sasl_port = _free_port()
    broker = start_local_broker(
        d / "run",
        {
            "CALLQUAL_KAFKA_SASL_SSL_PORT": str(sasl_port),
            "CALLQUAL_KAFKA_SSL_KEYSTORE": str(keystore),
            "CALLQUAL_KAFKA_SSL_KEYSTORE_PASSWORD_FILE": str(d / "keystore.pw"),
            "CALLQUAL_KAFKA_SCRAM_USER": USER,
            "CALLQUAL_KAFKA_SCRAM_PASSWORD_FILE": str(d / "scram.pw"),
        },
    )
    try:
        yield SecuredBroker(f"127.0.0.1:{sasl_port}", ca, password)
    finally:
        broker.stop()


def _callqual(*args: str) -> list[str]:
    return [sys.executable, "-m", "callqual", *args]


def _scrape(port: int) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_right_password_is_let_in_and_a_wrong_one_refused(secured: SecuredBroker) -> None:
    assert ensure_service_topics(secured.settings(secured.password), ["admitted.events"]) == [
        "admitted.events"
    ]
    with pytest.raises(TransportError) as refused:
        ensure_service_topics(secured.settings("not-" + secured.password), ["refused.events"])
    assert secured.password not in str(refused.value)


def test_collector_detector_alerter_through_sasl_ssl(secured: SecuredBroker, tmp_path: Path) -> None:
    pcap = tmp_path / "demo.pcap"
    simulate("demo", pcap, seed=4)
    report = analyze_file(pcap)
    env = secured.env("sec.")
    collector = subprocess.run(
        _callqual("collector", "--pcap", str(pcap)),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert collector.returncode == 0, collector.stderr[-3000:]
    detector_port = _free_port()
    detector = subprocess.Popen(
        _callqual("detector", "--exit-when-idle", "4", "--metrics-port", str(detector_port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    detector_metrics = _scrape(detector_port)
    _, detector_log = detector.communicate(timeout=180)
    assert detector.returncode == 0, detector_log[-3000:]
    alerter_port = _free_port()
    alerter = subprocess.Popen(
        _callqual("alerter", "--port", str(alerter_port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        expected = float(len(report.alerts))
        while True:
            alerter_metrics = _scrape(alerter_port)
            got = sum(
                float(line.rsplit(" ", 1)[1])
                for line in alerter_metrics.splitlines()
                if line.startswith("callqual_alerts_total{")
            )
            if got >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        alerter.send_signal(signal.SIGTERM)
        _, alerter_log = alerter.communicate(timeout=60)
    assert got == expected > 0, "every alert of the capture reached the alerter"
    final = json.loads(collector.stderr.strip().splitlines()[-1])
    assert final["lost"] == 0 and final["delivered"] == final["events"] > 0
    for text in (collector.stderr, detector_log, alerter_log, detector_metrics, alerter_metrics):
        assert secured.password not in text

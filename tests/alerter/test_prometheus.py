"""Prometheus against a running alerter: the rules check and pass their unit tests, and every
PromQL expression of the dashboards and rule files parses and runs on real scraped data.

Starts Debian's ``prometheus`` binary on loopback (temp config and data dir) scraping an
alerter fed from ``analyze_file`` on the simulated demo capture.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from callqual.alerter.service import AlerterService, build_service, feed_report
from callqual.alerter.settings import AlerterSettings
from callqual.observability.http_server import MetricsServer
from callqual.observability.metrics import AlerterMetrics
from callqual.schemas import AnalysisReport
from tests.alerter.receiver import Receiver, free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules/callqual.rules.yml"
RULE_TESTS = ROOT / "deploy/prometheus/tests/callqual.rules.test.yml"
#: The Prometheus dashboards (the call store's PostgreSQL one is tested in tests/store/test_grafana.py)
DASHBOARDS = sorted(
    p for p in (ROOT / "deploy/grafana/dashboards").glob("*.json") if p.name != "callqual-store.json"
)

#: Panels that must show data for the demo (dashboard uid, panel title)
KEY_PANELS = {
    ("callqual-overview", "Call volume (calls/min)"),
    ("callqual-overview", "Answer-seizure ratio"),
    ("callqual-overview", "Calls by category"),
    ("callqual-overview", "Failures by SIP status class"),
    ("callqual-overview", "MOS distribution"),
    ("callqual-overview", "MOS median and 10th percentile"),
    ("callqual-overview", "Top alerts (selected range)"),
    ("callqual-pipeline", "Scrape targets up"),
    ("callqual-pipeline", "Packets captured (/s)"),
    ("callqual-pipeline", "Webhook deliveries by receiver and outcome (/min)"),
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], check=False, capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_promtool_checks_the_rules_and_config() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("check", "config", "deploy/prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_have_stable_uids_and_the_provisioned_datasource() -> None:
    uids = set()
    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        uids.add(doc["uid"])
        for panel in doc["panels"]:
            assert panel["datasource"]["uid"] == "callqual-prometheus"
            assert panel["targets"], panel["title"]
    assert uids == {"callqual-overview", "callqual-pipeline"}
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["uid"] == "callqual-prometheus"


def all_expressions() -> list[tuple[str, str, str]]:
    """(origin, title, expr) for every dashboard target and rule."""
    out = []
    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        for panel in doc["panels"]:
            for target in panel["targets"]:
                out.append((doc["uid"], panel["title"], target["expr"]))
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            out.append(("rules", rule.get("alert") or rule["record"], rule["expr"]))
    return out


def grafana_to_promql(expr: str) -> str:
    # What Grafana substitutes before sending the query (for a 1 s scrape interval).
    return expr.replace("$__rate_interval", "10s").replace("$__range", "5m").replace("$__interval", "2s")


class Stack:
    def __init__(
        self, service: AlerterService, server: MetricsServer, prom_url: str, receiver: Receiver
    ) -> None:
        self.service = service
        self.server = server
        self.prom_url = prom_url
        self.receiver = receiver

    def query(self, expr: str) -> dict[str, object]:
        r = httpx.get(f"{self.prom_url}/api/v1/query", params={"query": expr}, timeout=10)
        return dict(r.json())


def wait_for(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, demo_report: AnalysisReport) -> Iterator[Stack]:
    if shutil.which("prometheus") is None:
        pytest.fail("Debian's prometheus is not installed: run scripts/setup")
    receiver = Receiver(free_port()).start()
    metrics = AlerterMetrics(CollectorRegistry())
    settings = AlerterSettings(webhook_url=receiver.url, group_wait_s=0)
    service = build_service(settings, metrics)
    service.notifier.start()
    server = MetricsServer(metrics, port=0, healthy=lambda: True).start()
    stop = threading.Event()
    loop = threading.Thread(target=service.run, args=(None, stop), kwargs={"poll_s": 0.1}, daemon=True)
    loop.start()

    work = tmp_path_factory.mktemp("prometheus")
    shutil.copy(RULES, work / "callqual.rules.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["callqual.rules.yml"],
        "scrape_configs": [
            {"job_name": "callqual-alerter", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (work / "prometheus.log").open("w")
    prom = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack = Stack(service, server, f"http://127.0.0.1:{port}", receiver)
    try:
        wait_for(lambda: httpx.get(f"{stack.prom_url}/-/ready").status_code == 200, 60, "prometheus ready")
        up = 'up{job="callqual-alerter"} == 1'
        wait_for(lambda: stack.query(up)["data"]["result"], 30, "the first scrape")  # type: ignore[index]
        # Counters must move between scrapes for rate(): feed the demo, let Prometheus see it,
        # then replay it once more (alert ids renamed, so de-duplication lets them through).
        feed_report(service, demo_report)
        time.sleep(3)
        again = demo_report.model_copy(
            update={
                "alerts": [
                    a.model_copy(update={"alert_id": a.alert_id + "-replay"}) for a in demo_report.alerts
                ]
            }
        )
        feed_report(service, again)
        service.tick()
        wait_for(lambda: len(receiver.requests) >= 1, 30, "a webhook delivery")
        time.sleep(4)
        yield stack
    finally:
        prom.terminate()
        try:
            prom.wait(15)
        except subprocess.TimeoutExpired:
            prom.kill()
        log.close()
        stop.set()
        loop.join(5)
        service.notifier.close(1)
        server.close()
        receiver.stop()


def test_every_promql_expression_parses_and_key_panels_have_data(stack: Stack) -> None:
    empty = []
    for origin, title, expr in all_expressions():
        result = stack.query(grafana_to_promql(expr))
        assert result["status"] == "success", (origin, title, expr, result)
        data = result["data"]["result"]  # type: ignore[index]
        if (origin, title) in KEY_PANELS and not any(_finite(s) for s in data):
            empty.append((origin, title, expr))
    assert not empty, f"key panels without data: {empty}"


def test_demo_numbers_reach_prometheus(stack: Stack, demo_report: AnalysisReport) -> None:
    total = stack.query('sum(callqual_calls_total{status_class="2xx"})')["data"]["result"]  # type: ignore[index]
    answered = sum(1 for c in demo_report.calls if c.method == "INVITE" and c.final_status == 200)
    assert float(total[0]["value"][1]) == 2 * answered
    rules = stack.query("sum by (rule) (callqual_alerts_total)")["data"]["result"]  # type: ignore[index]
    assert {s["metric"]["rule"] for s in rules} == {a.rule for a in demo_report.alerts}


def _finite(sample: dict[str, object]) -> bool:
    value = sample["value"][1]  # type: ignore[index]
    return value not in ("NaN", "+Inf", "-Inf")

"""``callqual detector``: Kafka collector events -> call records, stream records, alerts.

Exit codes, for supervisors:

* 0 - stopped (SIGTERM, or --exit-when-idle) after delivering outputs and committing offsets
* 1 - fatal Kafka error or an unexpected failure: restart; offsets replay what was not finished
* 3 - the --model file is missing or of another format/version (as ``callqual analyze``)
* 6 - outputs could not be delivered: offsets were not committed; restart to replay
"""

import argparse
import logging
from pathlib import Path
from typing import Any

from callqual.cli import jsonlog


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "detector",
        help="service: consume collector events from Kafka, publish call records and alerts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--group-id", help="consumer group; detectors of one group share the partitions")
    p.add_argument("--topic-prefix", help="topic name prefix (default 'callqual.')")
    p.add_argument("--partitions", type=int, help="partitions of topics created at start-up")
    p.add_argument(
        "--exit-when-idle",
        dest="exit_when_idle_s",
        type=float,
        metavar="SECONDS",
        help="exit once no event arrived for this long (batch runs, tests)",
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics and /healthz on this port")
    p.add_argument(
        "--stage",
        choices=["calls", "sources", "both"],
        help="calls: per-call work (partitioned by Call-ID); sources: the per-source rules "
        "(partitioned by source); both (default): the two in one process",
    )
    p.add_argument(
        "--source-horizon",
        dest="source_horizon_s",
        type=float,
        metavar="SECONDS",
        help="capture seconds a source-stage member replays after a takeover (default 3600)",
    )
    p.add_argument(
        "--model",
        type=Path,
        metavar="PATH",
        help="score finished calls with this model (callqual train; env CALLQUAL_DETECTOR_MODEL): "
        "raises anomalous_call alerts, as analyze --model does",
    )
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from callqual.detector.rules.settings import RuleSettings
    from callqual.detector.service import DetectorServiceSettings, serve

    fields = (
        *("bootstrap_servers", "group_id", "topic_prefix", "partitions", "exit_when_idle_s"),
        *("log_level", "metrics_port", "stage", "source_horizon_s", "model"),
    )
    overrides: dict[str, Any] = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    settings = DetectorServiceSettings(**overrides)
    jsonlog.setup("detector", settings.log_level)
    scorer = None
    if settings.model is not None:
        from callqual.cli.analyze import EXIT_UNREADABLE
        from callqual.cli.train import load_model_or_exit
        from callqual.detector.model import ModelScorer

        log = logging.getLogger("callqual.detector")
        model = load_model_or_exit(settings.model, report=log.error)  # stderr stays JSON lines
        if model is None:
            return EXIT_UNREADABLE
        scorer = ModelScorer(model)
        log.info(
            "scoring calls with the model",
            extra={"model": str(settings.model), "trained_calls": model.trained_calls},
        )
    return serve(settings, RuleSettings(), scorer)

"""``callqual evaluate``: precision, recall and F1 of every rule (and the model) against a capture's labels.

The simulator's labels say what was injected per call (its faults) and from
which source; the report says what the detector alerted. The two meet in
:data:`FAULT_RULES`, the one table that says which rule should fire for
which fault. Call rules are judged per call (Call-ID), source rules per
source IP, because that is what each alert names.
"""

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from callqual.detector.rules import RULE_IDS
from callqual.detector.rules.failure_classes import USER_OUTCOMES, failure_class
from callqual.schemas import AnalysisReport
from callqual.simulator.anomalies import HELD_OUT
from callqual.simulator.labels import CallLabel, SimulationLabels

#: Rule id of the learned model's alert (see ``callqual.detector.model``).
MODEL_RULE = "anomalous_call"

#: Label fault -> the rule ids that should alert for it. Faults not listed (auth_challenge,
#: ip_fragmentation, mild jitter without reordering) are normal life: no rule should fire.
FAULT_RULES = MappingProxyType(
    {
        "random_loss": ("packet_loss",),
        "burst_loss": ("packet_loss",),
        "heavy_loss": ("low_mos",),
        "reordering": ("high_jitter",),
        "one_way_audio": ("one_way_audio",),
        "no_media": ("no_media",),
        "long_post_dial_delay": ("long_post_dial_delay",),
        "sip_retransmissions": ("sip_retransmissions",),
        # Busy/cancelled/declined are the users' choice: call_failed stays quiet (see expected_rules).
        "call_failed": ("call_failed",),
        "dropped_call": ("dropped_call",),
        "scanner": ("sip_scanner",),
        "register_bruteforce": ("register_bruteforce",),
        "sip_flood": ("sip_flood",),
        "toll_fraud": ("toll_fraud",),
        "codec_mismatch": ("codec_mismatch",),
        "sdp_private_address": ("sdp_private_address",),
        # Per source: every malformed datagram is labelled, the rule names the source that sent them.
        "malformed_sip": ("malformed_sip",),
        "model_anomaly": (MODEL_RULE,),
    }
)

#: Rules whose alerts name a source (an attacker), judged per source IP rather than per call.
SOURCE_SCOPED = frozenset({"sip_scanner", "register_bruteforce", "sip_flood", "toll_fraud", "malformed_sip"})

#: Faults that do not make a call abnormal: a call carrying only these counts as normal for the
#: model's false-positive rate.
BENIGN_FAULTS = frozenset({"auth_challenge", "ip_fragmentation", "jitter"})


def expected_rules(label: CallLabel) -> set[str]:
    """The rule ids that should alert about this labelled call or transaction."""
    out: set[str] = set()
    for fault in label.faults:
        rules = FAULT_RULES.get(fault, ())
        if fault == "call_failed":
            cls = failure_class(label.final_status)
            if label.method != "INVITE" or cls is None or cls in USER_OUTCOMES:
                continue
        out.update(rules)
    return out


def is_normal(label: CallLabel) -> bool:
    """An INVITE call with nothing wrong injected (benign faults aside) and no user-outcome failure."""
    return label.method == "INVITE" and set(label.faults) <= BENIGN_FAULTS


class RuleScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    scope: Literal["call", "source"]
    true_positives: int
    false_positives: int
    false_negatives: int
    #: None when undefined (nothing predicted / nothing expected)
    precision: float | None
    recall: float | None
    f1: float | None


class KindScore(BaseModel):
    """Detection of one model-anomaly kind (see ``callqual.simulator.anomalies``)."""

    model_config = ConfigDict(frozen=True)

    kind: str
    #: never fitted or tuned on
    held_out: bool
    anomalies: int
    detected: int
    detection_rate: float | None


class ModelScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    anomalies: int
    detected: int
    detection_rate: float | None
    normal_calls: int
    normal_flagged: int
    false_positive_rate: float | None
    #: flagged calls carrying some other labelled fault (the model also sees what the rules see)
    other_faulty_flagged: int
    other_faulty_calls: int
    #: the same per anomaly kind, and over the held-out kinds together
    kinds: list[KindScore] = Field(default_factory=list)
    held_out_anomalies: int = 0
    held_out_detected: int = 0
    held_out_detection_rate: float | None = None


class Evaluation(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    labels: str
    rules: list[RuleScore] = Field(default_factory=list)
    model: ModelScore | None = None


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _score(rule: str, scope: Literal["call", "source"], expected: set[str], seen: set[str]) -> RuleScore:
    tp, fp, fn = len(expected & seen), len(seen - expected), len(expected - seen)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = None if precision is None and recall is None else _ratio(2 * tp, 2 * tp + fp + fn)
    return RuleScore(
        rule=rule,
        scope=scope,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=precision,
        recall=recall,
        f1=f1,
    )


def evaluate(
    report: AnalysisReport,
    labels: SimulationLabels,
    *,
    source: str = "",
    labels_path: str = "",
    model: bool = False,
) -> Evaluation:
    """Per-rule scores (every rule id, plus the model when ``model``), matching alerts to labels."""
    expected_calls: dict[str, set[str]] = {}
    expected_sources: dict[str, set[str]] = {}
    for label in labels.calls:
        for rule in expected_rules(label):
            if rule in SOURCE_SCOPED:
                expected_sources.setdefault(rule, set()).add(label.caller_ip)
            else:
                expected_calls.setdefault(rule, set()).add(label.call_id)
    seen_calls: dict[str, set[str]] = {}
    seen_sources: dict[str, set[str]] = {}
    for alert in report.alerts:
        if alert.rule in SOURCE_SCOPED:
            if alert.source_ip is not None:
                seen_sources.setdefault(alert.rule, set()).add(alert.source_ip)
        elif alert.call_id is not None:
            seen_calls.setdefault(alert.rule, set()).add(alert.call_id)
    rule_ids: Iterable[str] = [*RULE_IDS, MODEL_RULE] if model else RULE_IDS
    scores = []
    for rule in rule_ids:
        if rule in SOURCE_SCOPED:
            scores.append(
                _score(rule, "source", expected_sources.get(rule, set()), seen_sources.get(rule, set()))
            )
        else:
            scores.append(_score(rule, "call", expected_calls.get(rule, set()), seen_calls.get(rule, set())))
    model_score = _model_score(labels, seen_calls.get(MODEL_RULE, set())) if model else None
    return Evaluation(source=source, labels=labels_path, rules=scores, model=model_score)


def _model_score(labels: SimulationLabels, flagged: set[str]) -> ModelScore:
    invites = [c for c in labels.calls if c.method == "INVITE"]
    anomalies = [c.call_id for c in invites if "model_anomaly" in c.faults]
    normal = [c.call_id for c in invites if is_normal(c)]
    other = [c.call_id for c in invites if not is_normal(c) and "model_anomaly" not in c.faults]
    detected = sum(1 for c in anomalies if c in flagged)
    normal_flagged = sum(1 for c in normal if c in flagged)
    kinds = _kind_scores([c for c in invites if "model_anomaly" in c.faults], flagged)
    held = [k for k in kinds if k.held_out]
    held_total, held_detected = sum(k.anomalies for k in held), sum(k.detected for k in held)
    return ModelScore(
        anomalies=len(anomalies),
        detected=detected,
        detection_rate=_ratio(detected, len(anomalies)),
        normal_calls=len(normal),
        normal_flagged=normal_flagged,
        false_positive_rate=_ratio(normal_flagged, len(normal)),
        other_faulty_flagged=sum(1 for c in other if c in flagged),
        other_faulty_calls=len(other),
        kinds=kinds,
        held_out_anomalies=held_total,
        held_out_detected=held_detected,
        held_out_detection_rate=_ratio(held_detected, held_total),
    )


def _kind_scores(anomalies: list[CallLabel], flagged: set[str]) -> list[KindScore]:
    """Per kind, in the order held-out kinds last; labels without a kind count as 'unnamed'."""
    by_kind: dict[str, list[str]] = {}
    for label in anomalies:
        by_kind.setdefault(label.anomaly_kind or "unnamed", []).append(label.call_id)
    scores = []
    for kind, calls in by_kind.items():
        detected = sum(1 for c in calls if c in flagged)
        held_out = HELD_OUT.get(kind, False)
        scores.append(
            KindScore(
                kind=kind,
                held_out=held_out,
                anomalies=len(calls),
                detected=detected,
                detection_rate=_ratio(detected, len(calls)),
            )
        )
    return sorted(scores, key=lambda k: (k.held_out, k.kind))


def render(ev: Evaluation) -> str:
    """A fixed-width table: one row per rule id, then the model's detection figures."""

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    lines = [
        f"Capture   {ev.source}",
        f"Labels    {ev.labels}",
        "",
        f"{'rule':<22} {'scope':<6} {'tp':>5} {'fp':>5} {'fn':>5} {'precision':>9} {'recall':>7} {'f1':>6}",
    ]
    for r in ev.rules:
        lines.append(
            f"{r.rule:<22} {r.scope:<6} {r.true_positives:>5} {r.false_positives:>5} {r.false_negatives:>5} "
            f"{num(r.precision):>9} {num(r.recall):>7} {num(r.f1):>6}"
        )
    m = ev.model
    if m is not None:
        lines += [
            "",
            f"model     detected {m.detected}/{m.anomalies} model_anomaly calls "
            f"({num(m.detection_rate)}), flagged {m.normal_flagged}/{m.normal_calls} normal calls "
            f"({num(m.false_positive_rate)}), {m.other_faulty_flagged}/{m.other_faulty_calls} "
            "calls with other faults",
        ]
        for k in m.kinds:
            tag = "held out" if k.held_out else "tuning"
            lines.append(
                f"          {k.kind:<24} {tag:<8} {k.detected:>3}/{k.anomalies:<3} ({num(k.detection_rate)})"
            )
        if m.held_out_anomalies:
            lines.append(
                f"          held-out kinds together: {m.held_out_detected}/{m.held_out_anomalies} "
                f"({num(m.held_out_detection_rate)})"
            )
    return "\n".join(lines) + "\n"


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "evaluate",
        help="precision/recall/F1 per rule (and the model) on a labelled capture",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("capture", type=Path, help="pcap or pcapng file written by `callqual simulate`")
    p.add_argument("--labels", type=Path, required=True, help="the capture's labels JSON")
    p.add_argument("--model", type=Path, help="also run and score this model (callqual train)")
    p.add_argument("--threshold", type=float, help="model alert threshold (default: the model's own)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from callqual.cli.train import load_model_or_exit, run_capture
    from callqual.detector.model import ModelScorer
    from callqual.simulator.labels import read_labels

    scorer = None
    if args.model is not None:
        model = load_model_or_exit(args.model)
        if model is None:
            return 2
        scorer = ModelScorer(model, threshold=args.threshold)
    labels = read_labels(args.labels)
    report = run_capture(args.capture, scorer=scorer)
    if report is None:
        return 3
    ev = evaluate(
        report, labels, source=str(args.capture), labels_path=str(args.labels), model=scorer is not None
    )
    if args.format == "json":
        sys.stdout.write(json.dumps(ev.model_dump(), indent=2) + "\n")
    else:
        sys.stdout.write(render(ev))
    return 0

"""``callqual train``: fit the anomaly model on the finished calls of baseline captures.

The captures run through the same embedded pipeline as ``callqual analyze``;
a recording scorer hands every finished call (record, streams, messages) to
training, so the model sees exactly the features it will score later. By
default only calls the rules found nothing wrong with are used: the rules
already explain the others, and the model should learn what normal looks
like (``--all-calls`` trains on everything).
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.errors import CaptureFormatError
from callqual.detector.call_context import CallContext
from callqual.detector.detector import CallScorer
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import Alert, AnalysisReport

if TYPE_CHECKING:
    # scikit-learn takes seconds to import: only the commands that use the model load it.
    from callqual.detector.model import CallModel


class _Recorder:
    """A ``CallScorer`` that raises nothing and keeps every finished call (optionally wrapping another).

    The detector updates ``ctx.record`` (category, problems) after scoring,
    in place, so after the run the kept contexts carry the rules' verdicts.
    """

    def __init__(self, inner: CallScorer | None = None) -> None:
        self.inner = inner
        self.contexts: list[CallContext] = []

    def score(self, ctx: CallContext) -> Alert | None:
        self.contexts.append(ctx)
        return self.inner.score(ctx) if self.inner is not None else None


def run_capture(
    path: Path, scorer: CallScorer | None = None, contexts: list[CallContext] | None = None
) -> AnalysisReport | None:
    """Analyse one capture, appending its finished calls to ``contexts``; None if unreadable."""
    recorder = _Recorder(scorer)
    pipeline = EmbeddedPipeline(scorer=recorder)
    try:
        capture = open_capture(path)
    except (OSError, CaptureFormatError) as exc:
        print(f"callqual: {path}: cannot read capture ({exc})", file=sys.stderr)
        return None
    with capture:
        pipeline.run(capture)
        pipeline.finish()
        report = pipeline.report(str(path), capture.truncated, capture.errors)
    if contexts is not None:
        contexts.extend(recorder.contexts)
    return report


def baseline(contexts: list[CallContext]) -> list[CallContext]:
    """Calls no rule alerted on and no security incident touched."""
    return [c for c in contexts if not c.record.problems and c.record.category != "suspicious"]


def load_model_or_exit(path: Path, report: Callable[[str], None] | None = None) -> "CallModel | None":
    """The model, or None after reporting why it cannot be used (missing, foreign, other versions).

    ``report`` gets the message (default: printed to stderr); services log it as JSON instead.
    """
    from callqual.detector.model_file import ModelError, load

    say = report or (lambda message: print(message, file=sys.stderr))
    try:
        return load(path)
    except FileNotFoundError:
        say(f"callqual: {path}: no such model file")
    except ModelError as exc:
        say(f"callqual: {exc}")
    return None


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "train",
        help="fit the anomaly model (IsolationForest) on baseline captures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("captures", type=Path, nargs="+", metavar="CAPTURE", help="baseline pcap/pcapng files")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.skops)")
    p.add_argument("--all-calls", action="store_true", help="train on every call, alerted ones included")
    p.add_argument("--seed", type=int, default=0, help="random_state of the forest (default 0)")
    p.add_argument("--trees", type=int, default=100, help="number of trees (default 100)")
    p.add_argument(
        "--target-fpr",
        type=float,
        default=None,
        help="share of normal calls the model may flag, calibrated on the baseline (default 0.01)",
    )
    p.add_argument(
        "--contamination",
        type=float,
        default=None,
        help="at most this share of the baseline is taken for anomalies and left out (default 0.1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from callqual.detector.model_file import save
    from callqual.detector.model_fit import DEFAULT_CONTAMINATION, DEFAULT_TARGET_FPR, fit

    contexts: list[CallContext] = []
    for path in args.captures:
        if run_capture(path, contexts=contexts) is None:
            return 3
    chosen = contexts if args.all_calls else baseline(contexts)
    if len(chosen) < 2:
        print(f"callqual: only {len(chosen)} baseline calls; need at least 2", file=sys.stderr)
        return 2
    model = fit(
        chosen,
        random_state=args.seed,
        n_estimators=args.trees,
        target_fpr=DEFAULT_TARGET_FPR if args.target_fpr is None else args.target_fpr,
        contamination=DEFAULT_CONTAMINATION if args.contamination is None else args.contamination,
    )
    save(model, args.output)
    print(
        f"wrote {args.output}: {len(chosen)} of {len(contexts)} calls as baseline, "
        f"{model.trimmed_calls} of them left out as likely anomalies; range margin {model.margin:g}, "
        f"forest limit {model.forest_limit:.4f}, expected false-positive rate {model.expected_fpr:.2%}",
        file=sys.stderr,
    )
    return 0

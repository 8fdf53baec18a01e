"""Mutated shared captures through the whole path (callqual.fuzz): nothing may crash or be lost.

Seeded (``derandomize``) and bounded, so CI runs the same few hundred mutated
captures every time in about a minute; ``bench/bench_fuzz.py`` runs millions
of frames. A failure shrinks to the one mutation that causes it: the plan is
printed, and ``drive_plan`` on it reproduces the crash.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callqual.fuzz.driver import Capture, drive, drive_plan, load_captures
from callqual.fuzz.mutators import MUTATORS, SIP_MUTATORS, Mutation
from tests.shared_captures import PCAPS

CAPTURES = load_captures(PCAPS)
_GENERIC = sorted(set(MUTATORS) - SIP_MUTATORS)
#: Per frame (None), or record batches of these sizes: both ways Collector.run reads
BATCH_SIZES = (None, 1, 7, 64, 4096)


def _internal(errors: dict[str, int]) -> dict[str, int]:
    return {reason: n for reason, n in errors.items() if reason.startswith("internal.")}


@st.composite
def plans(draw: st.DrawFn) -> tuple[Capture, list[Mutation]]:
    capture = draw(st.sampled_from(CAPTURES))
    n = len(capture.frames)
    seeds = st.integers(0, 2**32 - 1)
    anywhere = st.builds(Mutation, st.integers(0, n - 1), st.sampled_from(_GENERIC), seeds)
    mutation = anywhere
    if capture.sip_frames:
        on_sip = st.builds(
            Mutation, st.sampled_from(capture.sip_frames), st.sampled_from(sorted(SIP_MUTATORS)), seeds
        )
        mutation = st.one_of(anywhere, on_sip)
    return capture, draw(st.lists(mutation, min_size=1, max_size=64))


def test_every_shared_capture_passes_the_whole_path_unmutated() -> None:
    """The baseline: the harness's own checks hold on the real captures, both ways of reading."""
    assert len(CAPTURES) >= 30
    for capture in CAPTURES:
        for batch_size in (None, 64):
            result = drive(capture.frames, batch_size, capture.name)
            assert result.frames == len(capture.frames)
            assert not _internal(result.errors), capture.name


@settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=plans(), batch_size=st.sampled_from(BATCH_SIZES))
def test_mutated_captures_never_crash_the_pipeline(
    plan: tuple[Capture, list[Mutation]], batch_size: int | None
) -> None:
    capture, mutations = plan
    result, mutated = drive_plan(capture, mutations, batch_size)
    assert 1 <= mutated <= len(mutations)
    assert result.frames == len(capture.frames)
    # The frame guard keeps the collector going when our code fails on a frame: counted as
    # internal.<Exception>, which is no crash but a defect all the same.
    assert not _internal(result.errors)

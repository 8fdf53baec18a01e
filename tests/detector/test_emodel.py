"""E-model against published ITU-T G.107 / G.113 values."""

import math

import pytest

from callqual.detector.emodel import impairment_for, mos_from_r, r_factor, stream_mos
from callqual.schemas import RtpStreamStats


def test_defaults_give_93_2_and_mos_4_41() -> None:
    # G.107 (06/2015) 7.7: all default values give R = 93.2.
    r = r_factor("PCMA", 0.0, 1.0, 0.0)
    assert r == pytest.approx(93.2, abs=0.05)
    assert mos_from_r(r) == pytest.approx(4.41, abs=0.01)


def test_g729a_costs_its_ie_of_11() -> None:
    assert impairment_for("G729").ie == 11.0
    assert r_factor("PCMU", 0, 1, 0) - r_factor("G729", 0, 1, 0) == pytest.approx(11.0)


@pytest.mark.parametrize(
    ("r", "mos"), [(0, 1.0), (50, 2.575), (60, 3.1), (70, 3.597), (80, 4.024), (90, 4.339), (100, 4.5)]
)
def test_mos_of_r_annex_b(r: float, mos: float) -> None:
    assert mos_from_r(r) == pytest.approx(mos, abs=1e-3)


def test_ie_eff_equation_g711_plc() -> None:
    # Ie,eff = 0 + 95 * 2 / (2 + 25.1) = 7.011 for 2 % random loss (G.107 eq. 7-29, Bpl from G.113).
    loss = r_factor("PCMU", 0.0, 1, 0) - r_factor("PCMU", 0.02, 1, 0)
    assert loss == pytest.approx(95 * 2 / (2 + 25.1), abs=1e-9)
    assert r_factor("PCMU", 0.02, 4, 0) < r_factor("PCMU", 0.02, 1, 0)  # bursty loss hurts more


def test_delay_beyond_100ms_costs_and_mos_monotonic() -> None:
    rs = [r_factor("PCMU", 0, 1, d) for d in (0, 100, 200, 300, 400)]
    assert rs == sorted(rs, reverse=True)
    assert rs[0] - rs[-1] > 25.0


def test_bad_inputs_do_not_crash() -> None:
    for value in (math.nan, math.inf, -1.0):
        assert math.isfinite(r_factor(None, value, value, value))
    assert mos_from_r(math.nan) == 1.0
    assert impairment_for("AAL2-G726-32").ie == 7.0
    assert impairment_for("no-such-codec").source.startswith("fallback")


def test_stream_mos_of_a_report() -> None:
    base = dict(
        call_id="c",
        ssrc=1,
        src_ip="a",
        src_port=1,
        dst_ip="b",
        dst_port=2,
        payload_type=8,
        payload_types=[8],
        codec="PCMA",
        clock_rate=8000,
        first_ts=0.0,
        last_ts=10.0,
        first_frame=1,
        duplicates=0,
        out_of_order=0,
        seq_errors=0,
        min_delta_ms=20,
        mean_delta_ms=20,
        max_delta_ms=20,
        min_jitter_ms=0,
        mean_jitter_ms=0,
        max_jitter_ms=0,
    )
    clean = RtpStreamStats(packets=500, expected=500, lost=0, **base)  # type: ignore[arg-type]
    lossy = RtpStreamStats(packets=450, expected=500, lost=50, **base)  # type: ignore[arg-type]
    _, mos_clean = stream_mos(clean) or (0, 0)
    _, mos_lossy = stream_mos(lossy) or (0, 0)
    assert 4.3 < mos_clean <= 4.41 and mos_lossy < 3.6
    assert stream_mos(RtpStreamStats(packets=0, expected=0, lost=0, **base)) is None  # type: ignore[arg-type]

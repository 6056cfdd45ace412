"""Decision rules, clock gates and Holm (analyzer.stats.verdicts)."""

from __future__ import annotations

from analyzer.stats.intervals import Interval
from analyzer.stats.verdicts import (
    Decision,
    Verdict,
    both_directions,
    clock_free,
    clock_gate,
    clock_limited,
    decide_absolute,
    decide_ratio,
    holm_adjust,
)

P, F, INC, N = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.NOT_EVALUABLE


def test_ratio_rule() -> None:
    assert decide_ratio(Interval(0.1, 0.08, 0.2), 0.2).verdict is P  # U <= theta
    assert decide_ratio(Interval(0.3, 0.21, 0.4), 0.2).verdict is F  # L > theta
    assert decide_ratio(Interval(0.2, 0.15, 0.25), 0.2).verdict is INC
    assert decide_ratio(Interval(0.3, 0.2, 0.4), 0.2).verdict is INC  # L == theta: not outside


def test_absolute_rule_adds_the_clock_error() -> None:
    ms = 1e6
    assert decide_absolute(Interval(0.5, 0.4, 0.8), 1.0, 0.1).verdict is P  # 0.8 + 0.1 < 1
    assert decide_absolute(Interval(0.5, 0.4, 0.95), 1.0, 0.1).verdict is INC
    assert decide_absolute(Interval(1.5, 1.2, 1.8), 1.0, 0.1).verdict is F  # 1.2 - 0.1 >= 1
    assert decide_absolute(Interval(1.1, 1.05, 1.2), 1.0, 0.1).verdict is INC
    d = decide_absolute(Interval(0.5 * ms, 0.4 * ms, 0.8 * ms), ms, 0.0, 1e6, " ms")
    assert "0.8 ms < 1 ms" in d.reason


def test_clock_gates() -> None:
    gate = clock_gate(3, 500.0, 10.0)
    assert gate is not None
    assert gate.verdict is N
    assert "unsynchronised" in gate.reason
    fault = clock_gate(0, -5.0, 10.0)
    assert fault is not None
    assert "clock fault" in fault.reason
    assert clock_gate(0, 500.0, 10.0) is None
    assert clock_limited(500.0, 51.0)
    assert not clock_limited(500.0, 50.0)


def test_clock_free_bound() -> None:
    t = 1e6
    passed = clock_free(Interval(0.8e6, 0.7e6, 0.9e6), t)
    assert passed is not None
    assert passed.verdict is P
    failed = clock_free(Interval(2.5e6, 2.1e6, 2.9e6), t)
    assert failed is not None
    assert failed.verdict is F
    assert clock_free(Interval(1.5e6, 1.2e6, 1.8e6), t) is None


def test_both_directions() -> None:
    p, f, i = Decision(P, "p"), Decision(F, "f"), Decision(INC, "i")
    assert both_directions(p, p).verdict is P
    assert both_directions(p, f).verdict is F
    assert both_directions(p, i).verdict is INC
    assert both_directions(p, Decision(N, "n")).verdict is N


def test_holm_demotes_pairs_that_are_not_significant_over_the_list() -> None:
    rows = [Decision(P, "a", 0.001, 0.999), Decision(P, "b", 0.02, 0.98),
            Decision(F, "c", 0.99, 0.004), Decision(N, "d")]
    out = holm_adjust(rows)
    assert [d.verdict for d, _, _ in out] == [P, INC, F, N]
    assert out[1][1] == 0.04  # 0.02 x 2 (rank 2 of 3)
    assert "Holm" in out[1][0].reason

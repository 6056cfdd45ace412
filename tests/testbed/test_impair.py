"""Impairment models: exact seeded behaviour and binomial bounds that cannot flake."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from testbed.impair import Direction, GilbertElliott, Jitter, Loss, PathState


def binomial_bounds(n: int, p: float, z: float = 3.29) -> tuple[float, float]:
    """Normal-approximation 99.9 % interval of a binomial count (z = 3.29)."""
    sd = math.sqrt(n * p * (1 - p))
    return n * p - z * sd, n * p + z * sd


def test_independent_loss_rate_within_binomial_interval() -> None:
    state = PathState(Direction(1.0, loss=Loss(0.02)), random.Random(7))
    n = 50_000
    lost = sum(state.is_lost() for _ in range(n))
    lo, hi = binomial_bounds(n, 0.02)
    assert lo <= lost <= hi


def test_gilbert_parameters_from_rate_and_burst() -> None:
    loss = Loss(rate=0.01, burst=4.0)
    p, r = loss.gilbert or (0.0, 0.0)
    assert r == pytest.approx(0.25)
    assert GilbertElliott(p, r).mean_loss == pytest.approx(0.01)


def test_gilbert_elliott_mean_and_burst_length() -> None:
    ge, rng = GilbertElliott(0.0101, 0.25), random.Random(3)
    seq = [ge.lost(rng) for _ in range(200_000)]
    assert sum(seq) / len(seq) == pytest.approx(ge.mean_loss, rel=0.15)
    # Loss periods (RFC 3357 §4): mean length should be near 1/r = 4.
    periods, run = [], 0
    for lost in seq:
        if lost:
            run += 1
        elif run:
            periods.append(run)
            run = 0
    assert 3.0 < statistics.mean(periods) < 5.0


def test_gilbert_elliott_rejects_bad_probabilities() -> None:
    with pytest.raises(ValueError, match="p=1.5"):
        GilbertElliott(1.5, 0.1)


def test_normal_jitter_median_near_zero_and_clipped() -> None:
    rng, jit = random.Random(1), Jitter("normal", sigma_ms=0.5, cap_ms=1.0)
    xs = [jit.sample(rng, floor_ms=0.2) for _ in range(20_000)]
    assert min(xs) >= -0.2
    assert max(xs) <= 1.0
    assert abs(statistics.median(xs)) < 0.05


def test_pareto_jitter_positive_heavy_tail() -> None:
    rng, jit = random.Random(1), Jitter("pareto", sigma_ms=1.0, shape=3.0, cap_ms=30.0)
    xs = sorted(jit.sample(rng, 0.0) for _ in range(20_000))
    assert xs[0] >= 0
    assert xs[-1] <= 30.0
    # Lomax median = sigma (2^(1/shape) - 1) = 0.26 ms.
    assert statistics.median(xs) == pytest.approx(2 ** (1 / 3) - 1, rel=0.1)
    assert xs[int(0.999 * len(xs))] > 5 * statistics.median(xs)


def test_fifo_without_reorder_despite_jitter() -> None:
    state = PathState(Direction(1.0, Jitter("pareto", 2.0)), random.Random(5))
    out = [state.release_times(i * 100_000)[0] for i in range(5_000)]
    assert out == sorted(out)


def test_reorder_and_duplicate_rates() -> None:
    spec = Direction(1.0, reorder=0.1, reorder_ms=2.0, duplicate=0.05)
    state = PathState(spec, random.Random(11))
    n, dup, late = 20_000, 0, 0
    for i in range(n):
        times = state.release_times(i * 100_000)
        dup += len(times) - 1
        late += times[0] > i * 100_000 + 2_000_000
    for count, p in ((dup, 0.05), (late, 0.1)):
        lo, hi = binomial_bounds(n, p)
        assert lo <= count <= hi


def test_same_seed_same_decisions() -> None:
    spec = Direction(5.0, Jitter("normal", 1.0), Loss(0.1, 3.0), duplicate=0.1)
    a, b = PathState(spec, random.Random(42)), PathState(spec, random.Random(42))
    assert [a.release_times(i) for i in range(1000)] == [b.release_times(i) for i in range(1000)]

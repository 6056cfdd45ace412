"""``bench.wire_decode`` at smoke size: a benchmark that breaks fails here, not in a README."""

from __future__ import annotations

from bench import wire_decode


def test_wire_decode_bench_runs_at_smoke_size() -> None:
    best = wire_decode.run(None, rounds=1, n_bodies=1)
    assert set(best) == {"this", "this (again)"}
    for shapes in best.values():
        assert set(shapes) == {"narrow", "wide"}
        assert all(0 < ms < 1_000 for ms in shapes.values())

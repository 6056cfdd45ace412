"""The stored DDSketch codec: vectorised over many sketches vs. byte by byte, one at a time.

``python -m bench.sketch_codec [--n N] [--smoke]``: encodes and decodes N minute-sized sketches
(60 RTTs each) and N/10 day-sized ones (86,400 RTTs each, a few hundred buckets) three ways:
the product codec (:mod:`analyzer.rollups.sketch_codec`) over all of them at once, the same
codec one sketch at a time (what ``DDSketch.to_bytes`` / ``from_bytes`` and a lazy sketch's
first use would cost alone; a read decodes its sketches together), and the per-byte Python
reference (``tests/oracles/sketch_bytes.py``). Every way must give the same bytes and buckets.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.rollups import sketch_codec  # noqa: E402
from analyzer.rollups.sketch import DDSketch  # noqa: E402
from tests.oracles import sketch_bytes  # noqa: E402


def sketches(n: int, values: int, seed: int) -> list[DDSketch]:
    """``n`` sketches of ``values`` log-normal RTTs around 20 ms each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = DDSketch()
        s.extend(rng.lognormal(np.log(20e6), 0.3, values).astype(np.int64).tolist())
        out.append(s)
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def measure(name: str, items: list[DDSketch]) -> None:
    n = len(items)
    keys = [sorted(s.buckets) for s in items]
    flat_keys = [k for ks in keys for k in ks]
    flat_counts = [s.buckets[k] for s, ks in zip(items, keys, strict=True) for k in ks]
    t_ref_enc, ref = timed(lambda: [sketch_bytes.encode(s) for s in items])
    t_many_enc, many = timed(lambda: sketch_codec.encode_many(
        [s.zero for s in items], flat_keys, flat_counts, [len(k) for k in keys]))
    t_one_enc, one = timed(lambda: [s.to_bytes() for s in items])
    assert ref == many == one, "the encoders disagree"
    t_ref_dec, back = timed(lambda: [sketch_bytes.decode(b) for b in ref])
    t_many_dec, (zero, sizes, dk, dc) = timed(lambda: sketch_codec.decode_columns(ref))
    t_one_dec, single = timed(lambda: [DDSketch.from_bytes(b) for b in ref])
    assert back == single == items, "the decoders disagree"
    assert dk.tolist() == flat_keys
    assert dc.tolist() == flat_counts
    print(f"\n{name}: {n:,} sketches, {len(flat_keys) / n:.0f} buckets each, "
          f"{sum(map(len, ref)) / n:.0f} bytes each (µs per sketch)")
    print("| way | encode | decode |\n|---|---:|---:|")
    for way, enc, dec in (("per-byte Python, one at a time (tests/oracles)",
                           t_ref_enc, t_ref_dec),
                          ("vectorised, all at once (encode_many / decode_columns)",
                           t_many_enc, t_many_dec),
                          ("vectorised, one at a time (to_bytes / from_bytes)",
                           t_one_enc, t_one_dec)):
        print(f"| {way} | {enc / n * 1e6:.1f} | {dec / n * 1e6:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="minute sketches (day: n / 10)")
    ap.add_argument("--smoke", action="store_true", help="seconds: 500 sketches")
    args = ap.parse_args()
    n = 500 if args.smoke else args.n
    print(f"load average {os.getloadavg()[0]:.2f}")
    measure("minute sketches (60 RTTs)", sketches(n, 60, 1))
    measure("day sketches (86,400 RTTs)", sketches(max(1, n // 10), 86_400, 2))
    print("\nsame bytes and buckets every way")


if __name__ == "__main__":
    main()

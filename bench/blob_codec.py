"""The raw-result codec (IXB2, one blob per batch and method) per batch of 1,000 results.

    .venv/bin/python -m bench.blob_codec            # 20 batches per shape (~10 s)
    .venv/bin/python -m bench.blob_codec --full     # 100 batches per shape

For the *narrow* (6 streams) and *wide* (100 streams of 10) shapes of ``bench.store_ingest``,
batches decoded from bodies as the collector decodes them: the time to encode a batch (best of
15 rounds over all its batches) with ``batch_blobs``, its stored bytes, and the time to decode
them back. On a shared machine pin it to the quietest core (``taskset -c 0``): the best round is
then close to a quiet machine's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from analyzer.columns import ColumnBatch, MethodBlob, batch_blobs, decode_blob
from analyzer.wire_columns import decode_body
from bench.collector_harness import bodies
from bench.store_ingest import SHAPES, SIZE


def best_ms(fn: Callable[[], Any], per: int, rounds: int = 15) -> float:
    """Best of ``rounds`` runs of ``fn``, in ms per one of its ``per`` batches."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / per * 1e3


def per_method(batches: list[ColumnBatch]) -> tuple[float, float, float]:
    """IXB2: encode ms, bytes and decode ms per batch."""
    stored: list[list[MethodBlob]] = [batch_blobs(x) for x in batches]

    def decode() -> None:
        for blobs in stored:
            for m in blobs:
                decode_blob([b.ident for b in m.blocks], m.data)

    return (best_ms(lambda: [batch_blobs(x) for x in batches], len(batches)),
            sum(len(m.data) for blobs in stored for m in blobs) / len(batches),
            best_ms(decode, len(batches)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="100 batches per shape")
    parser.add_argument("--smoke", action="store_true", help="2 batches (the suite runs this)")
    args = parser.parse_args()
    n = 2 if args.smoke else 100 if args.full else 20
    print(f"per batch of {SIZE} results, {n} batches per shape\n")
    print("| shape | codec | encode ms | bytes | decode ms |\n|---|---|---|---|---|")
    for shape, paths in SHAPES.items():
        batches = [decode_body(body) for _, body in bodies("p0", n, SIZE, paths=paths)]
        streams = f"{shape} ({len(batches[0].blocks)} streams)"
        enc, size, dec = per_method(batches)
        print(f"| {streams} | IXB2, a blob per method | {enc:.3f} | {size:,.0f} | {dec:.3f} |")


if __name__ == "__main__":
    main()

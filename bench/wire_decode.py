"""Decode time of a 1,000-result batch body, narrow and wide: this tree's decoder against
another commit's, on the same bodies, in one run.

    .venv/bin/python -m bench.wire_decode                    # against main, 5 rounds
    .venv/bin/python -m bench.wire_decode --against HEAD~3 --rounds 9
    .venv/bin/python -m bench.wire_decode --smoke            # seconds; this tree against itself

*Narrow*: 6 streams (3 paths x ICMP/STAMP, the factory's shape); *wide*: 100 streams of 10
results. The bodies are made once by this tree's encoder (``bench.collector_harness.bodies``;
the format is the same on both sides) and written to a file; each round then runs one
subprocess per tree, alternately, each importing its own ``analyzer.wire_columns.decode_body``
and timing the best of 5 passes over the bodies. Reported: the best round per tree and shape,
in ms per body, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from analyzer.synthetic.varied import PATHS, wide_paths
from bench.collector_harness import ROOT, bodies

SHAPES = {"narrow": PATHS, "wide": wide_paths(100)}
TIMER = """
import json, sys, time
from analyzer.wire_columns import decode_body
shapes = json.load(open(sys.argv[1]))
out = {}
for shape, texts in shapes.items():
    data = [t.encode() for t in texts]
    for body in data:
        decode_body(body)  # warm: imports, caches
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for body in data:
            decode_body(body)
        best = min(best, (time.perf_counter() - start) / len(data))
    out[shape] = best * 1e3
print(json.dumps(out))
"""


def export(rev: str, into: Path) -> Path:
    """The source tree of ``rev`` (git archive), for its decoder."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True,
                             capture_output=True).stdout
    into.mkdir(parents=True)
    tar = into.with_suffix(".tar")
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into


def timed(tree: Path, bodies_file: Path) -> dict[str, float]:
    """ms per body by shape, with ``tree``'s decoder."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", TIMER, str(bodies_file)], cwd=tree, env=env,
                         check=True, capture_output=True, text=True).stdout
    return {k: float(v) for k, v in json.loads(out).items()}


def run(against: str | None, rounds: int, n_bodies: int) -> dict[str, dict[str, float]]:
    """Best ms per body for each tree (``this`` and the other) and shape."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        made = {shape: [body.decode() for _, body in bodies("p0", n_bodies, 1000, paths=paths)]
                for shape, paths in SHAPES.items()}
        bodies_file = tmp / "bodies.json"
        bodies_file.write_text(json.dumps(made))
        trees = {"this": ROOT, against or "this (again)": export(against, tmp / "other")
                 if against else ROOT}
        best: dict[str, dict[str, float]] = {name: {} for name in trees}
        for _ in range(rounds):
            for name, tree in reversed(trees.items()):  # the other first, then this
                for shape, ms in timed(tree, bodies_file).items():
                    best[name][shape] = min(best[name].get(shape, ms), ms)
        return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="main", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bodies", type=int, default=20, help="bodies per shape")
    parser.add_argument("--smoke", action="store_true", help="tiny run, this tree only")
    args = parser.parse_args()
    against = None if args.smoke else args.against
    rounds = 1 if args.smoke else args.rounds
    best = run(against, rounds, 2 if args.smoke else args.bodies)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"decode of a 1,000-result body, best of {rounds} rounds x 5 passes; "
          f"load average {load}\n")
    print("| decoder | narrow (6 streams) ms | wide (100 streams) ms |\n|---|---|---|")
    for name, shapes in best.items():
        print(f"| {name} | {shapes['narrow']:.3f} | {shapes['wide']:.3f} |")


if __name__ == "__main__":
    main()

"""Synthetic data, made in one place: topology, raw results and rollup tiers nobody measured.

- :mod:`~analyzer.synthetic.province`: the one inventory generator (a province of Hunan's 14
  cities over the packaged inventory, probes per carrier and a mesh of paths);
- :mod:`~analyzer.synthetic.results`: the one raw-result generator (:class:`Stream` records,
  evenly spaced lognormal series, exact hours) and batch writer;
- :mod:`~analyzer.synthetic.exchange`: a before/after history of an exchange point over an
  inventory's sites (the dashboard's demo data), built from those records;
- :mod:`~analyzer.synthetic.varied`: records of every kind (errors, duplicates, IPv6 STAMP,
  hops) under a caller's probe id, for the store, collector and codec tests and benchmarks;
- :mod:`~analyzer.synthetic.tiers`: the one rollup writer (day and busy-hour tiers loaded
  through ``Writer.load_rows``, a *load* link whose note must say "synthetic").

Why here, in the analyzer: it writes through the store (``write_batch``, ``load_rows``) and
builds rollups and sketches, which the analyzer owns, and product code uses it (``ixmeter
dashboard --demo-data``, ``ixmeter demo``'s fault history), so it cannot live under bench/ or
tests/. The testbed is not the place: product code never imports the testbed, and the testbed
imports nothing of the analyzer. Benchmarks and tests call it with their own sizes.

What it writes says what it is: probe ids and batch ids ``synthetic-*`` and the timestamp
source ``imported`` (unless a caller needs a collector's probe ids: ``varied``,
bench.province_rate), load links whose note says "synthetic", inventories with ``synthetic:``.
"""

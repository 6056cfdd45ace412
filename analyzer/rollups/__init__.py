"""Rollups: what every verdict, report and dashboard figure is computed from.

- :mod:`~analyzer.rollups.model`: the record (:class:`MinuteRollup`, :class:`DelayStats`) and
  its merge;
- :mod:`~analyzer.rollups.sketch`, :mod:`~analyzer.rollups.sketch_codec`: the DDSketch and
  its one stored form;
- :mod:`~analyzer.rollups.batch`: a batch's minute, hour and day rollups, computed with numpy;
- :mod:`~analyzer.rollups.tables`: rollups as columns, merged and folded into tiers;
- :mod:`~analyzer.rollups.tiers`: the tiers' UTC units;
- :mod:`~analyzer.rollups.rows`: the stored row of a rollup, rows to and from tables;
- :mod:`~analyzer.rollups.columns`: the columns the analyzer reads.

Pure: no I/O. Imports :mod:`analyzer.columns` and :mod:`ixmeter` only, never the store or the
statistics (which import it).
"""

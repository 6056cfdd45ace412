"""ixmeter: prove whether a network got faster.

The top of the house: the ``ixmeter`` command (:mod:`ixmeter.cli`) and the demo's orchestration
(:mod:`ixmeter.demo`). What every part shares lives in :mod:`ixmeter.core`, the ground
(docs/architecture.md).
"""

"""The ground of the house: what every part of ixmeter shares and nothing else.

The project's error base (:mod:`~ixmeter.core.errors`), the versioned result record and its
value rules (:mod:`~ixmeter.core.record`, :mod:`~ixmeter.core.rules`), the signed wire formats
between probe and collector (:mod:`~ixmeter.core.wire`, :mod:`~ixmeter.core.heartbeat`,
:mod:`~ixmeter.core.plan`) and the kernel's packet timestamps that probes and the testbed both
read (:mod:`~ixmeter.core.timestamping`). It imports no other ixmeter package
(docs/architecture.md; tests/test_layering.py).
"""

__version__ = "0.1.0"

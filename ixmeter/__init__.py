"""ixmeter: prove whether a network got faster.

This small package holds what every side shares: the command line, the project's error base,
the versioned result record and the signed wire format between probe and collector.
"""

__version__ = "0.1.0"

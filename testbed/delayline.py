"""Loopback mode: the unprivileged fallback (placeholder until the UDP delay line lands)."""

from __future__ import annotations

import argparse
from typing import Any

from testbed.daemon import TestbedError


def up_loopback(args: argparse.Namespace) -> dict[str, Any]:
    raise TestbedError("loopback mode (UDP delay line) is not implemented yet",
                       hint="run as root for the namespace testbed")

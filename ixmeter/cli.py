"""The ``ixmeter`` command: a thin dispatcher over each package's own CLI module.

Each subcommand lives in the package that owns it, in a module exposing
``configure(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``.
Those modules import nothing heavy at import time, so ``ixmeter --help`` stays fast and a probe
host without the server extra still gets a working ``ixmeter probe``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from ixmeter.core import __version__
from ixmeter.core.errors import IxmeterError

# name -> (module, one-line help). Order is the order ``ixmeter --help`` shows.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "inventory": ("inventory.cli", "validate and summarise inventory files"),
    "analyze": ("analyzer.cli.analyze", "judge policy targets: verdicts with 95% intervals"),
    "report": ("analyzer.cli.report", "write the auditors' report (HTML, PDF, CSV, JSON)"),
    "faults": ("analyzer.cli.faults", "fault register: fault rules judged day by day (--watch)"),
    "import": ("analyzer.importers.cli", "import csv, ping, fping or RIPE Atlas results"),
    "testbed": ("testbed.cli", "build and drive the emulated carrier network for tests and demo"),
    "collector": ("analyzer.collector.cli", "run the HTTP collector that stores signed batches"),
    "keys": ("analyzer.collector.keys_cli", "per-probe HMAC keys; the head signing key"),
    "verify": ("analyzer.cli.verify", "check the store against its hash chain, read-only"),
    "demo": ("ixmeter.demo", "run the whole system on the built-in emulated network"),
    "dashboard": ("dashboard.cli", "serve the read-only dashboard (Dash) over a results database"),
    "reflector": ("probes.reflector_cli", "run a STAMP session-reflector (RFC 8762) until Ctrl-C"),
    "probe": ("probes.cli", "run the probe agent, or write a probe's config from the inventory"),
}


class _CommandModule(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def build_parser() -> argparse.ArgumentParser:
    """The full parser, every subcommand configured by its owning module."""
    parser = argparse.ArgumentParser(
        prog="ixmeter",
        description="Measure inter-carrier latency and loss and judge them against policy targets.",
    )
    parser.add_argument("--version", action="version", version=f"ixmeter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module: _CommandModule = importlib.import_module(module_name)
        escaped = help_text.replace("%", "%%")  # argparse %-formats help, not descriptions
        child = sub.add_parser(name, help=escaped, description=help_text)
        module.configure(child)
        child.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ixmeter`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    module: _CommandModule = importlib.import_module(args._module)
    try:
        return module.run(args)
    except IxmeterError as exc:
        print(f"ixmeter {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ixmeter {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

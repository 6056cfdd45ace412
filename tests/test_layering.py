"""The house's layering (docs/architecture.md), checked by import-linter on every test run.

The contracts live in pyproject.toml (``[tool.importlinter]``): the command on top, the dashboard,
then analyzer, probes and testbed side by side (none imports another), the inventory, and the
ground package ``ixmeter.core`` below everything; product code never imports the testbed; no
package has an import cycle between its modules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True,
                        no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out

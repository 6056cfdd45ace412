"""``python -m bench``: list the benchmarks, each with the first line of its docstring."""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    print("benchmarks (run one with: .venv/bin/python -m bench.NAME [--full]):")
    for path in sorted(here.glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first = doc.strip().splitlines()[0] if doc.strip() else ""
        print(f"  {path.stem:24} {first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

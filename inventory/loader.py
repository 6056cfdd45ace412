"""Load inventory YAML files with precise problems: file, line, field and what is wrong.

YAML is composed into nodes first, so every pydantic error location (``sites[3].lat``) and every
cross-reference problem can be traced back to the line it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from inventory.schema import Inventory
from ixmeter.core.errors import IxmeterError

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an inventory file."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class InventoryError(IxmeterError):
    """An inventory that failed validation; ``problems`` lists each one."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


def format_loc(loc: Loc) -> str:
    """``('sites', 3, 'lat')`` -> ``sites[3].lat``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


class SourceMap:
    """Maps a location inside the loaded data to the line it came from (1-based)."""

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    def line(self, loc: Loc) -> int:
        node = self._root
        if node is None:
            return 1
        best = node.start_mark.line + 1
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = child
            best = node.start_mark.line + 1
        return best


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


# libyaml's parser when PyYAML has it (its wheels do): a generated province's inventory (15,000
# paths, 1.4 MB) parsed in ~1 s instead of ~20 s twice with the pure-Python one
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    """Parse ``path``; a syntax error becomes an :class:`InventoryError` with its line."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError([Problem(name, 0, "(file)", f"cannot read: {exc.strerror}")]) from None
    loader = _LOADER(text)
    try:  # one parse: the node tree (for line numbers), then the data constructed from it
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise InventoryError([Problem(name, line, "(syntax)", f"YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise InventoryError([Problem(name, 0, "(syntax)", f"YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return data, SourceMap(node)


def _pydantic_problems(name: str, exc: ValidationError, smap: SourceMap) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append(Problem(name, smap.line(loc), format_loc(loc), msg))
    return problems


def load(path: str | Path) -> Inventory:
    """Load and fully validate one inventory file, or raise :class:`InventoryError`."""
    from inventory.validate import cross_check  # local: validate imports this module

    path = Path(path)
    data, smap = read_yaml(path)
    if not isinstance(data, dict):
        raise InventoryError([Problem(str(path), 1, "(file)", "expected a mapping at top level")])
    try:
        inv = Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(_pydantic_problems(str(path), exc, smap)) from None
    problems = [Problem(str(path), smap.line(loc), format_loc(loc), msg)
                for loc, msg in cross_check(inv)]
    if problems:
        raise InventoryError(problems)
    return inv


def load_many(paths: Sequence[str | Path]) -> tuple[list[Inventory], list[Problem]]:
    """Load every file, collecting problems instead of stopping at the first bad file."""
    inventories: list[Inventory] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            inventories.append(load(path))
        except InventoryError as exc:
            problems.extend(exc.problems)
    return inventories, problems


def default_inventory() -> Path:
    """The province seed shipped with the package: ``inventory/hunan.yaml``."""
    return Path(__file__).with_name("hunan.yaml")

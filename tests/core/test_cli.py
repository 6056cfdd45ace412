"""Every ``ixmeter`` subcommand has help text and is documented in the README or docs/."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from ixmeter.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*prefix, name), child
                yield from _commands(child, (*prefix, name))


COMMANDS = list(_commands(build_parser()))


def _docs() -> str:
    texts = [ROOT.joinpath("README.md").read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8") for p in sorted(ROOT.joinpath("docs").glob("*.md"))]
    return "\n".join(texts)


@pytest.mark.parametrize(("words", "parser"), COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_subcommand_has_help_and_docs(words: tuple[str, ...], parser: argparse.ArgumentParser,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert parser.description or parser.format_help()
    with pytest.raises(SystemExit) as exit_info:
        main([*words, "--help"])
    assert exit_info.value.code == 0
    assert "usage: ixmeter" in capsys.readouterr().out
    assert f"ixmeter {' '.join(words)}" in _docs(), f"'ixmeter {' '.join(words)}' is not documented"


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for words, _ in COMMANDS:
        if len(words) == 1:
            assert words[0] in out


def test_version() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0

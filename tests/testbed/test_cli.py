"""The ``ixmeter testbed`` command: every action has help; ``check`` names the mode."""

from __future__ import annotations

import pytest

from ixmeter.cli import build_parser, main

ACTIONS = ["up", "down", "status", "exec", "profile", "paths", "check"]


def test_registered_in_ixmeter() -> None:
    assert "testbed" in build_parser().format_help()


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_has_help(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["testbed", action, "--help"])
    assert exc.value.code == 0
    assert "usage: ixmeter testbed" in capsys.readouterr().out


def test_check_prints_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testbed", "check"]) == 0
    assert "mode:" in capsys.readouterr().out


def test_status_of_absent_instance(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testbed", "status", "--instance", "never-started"]) == 1
    assert "down" in capsys.readouterr().out


def test_exec_without_testbed_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testbed", "exec", "--instance", "never-started", "h", "--", "true"]) == 2
    assert "not up" in capsys.readouterr().err


def test_bad_instance_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testbed", "status", "--instance", "Bad/Name"]) == 2
    assert "bad instance name" in capsys.readouterr().err

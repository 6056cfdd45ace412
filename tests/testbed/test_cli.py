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


def test_missing_privileges_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from testbed import netns

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(netns, "_has_cap", lambda bit: False)
    priv = netns.check_privileges()
    assert not priv.full
    assert "root (CAP_NET_ADMIN" in priv.missing[0]
    with pytest.raises(netns.PermissionProblem, match="--mode loopback"):
        netns.require_privileges()


def test_up_falls_back_to_loopback_and_says_why(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from testbed import netns

    monkeypatch.setattr(netns, "check_privileges",
                        lambda: netns.Privileges(("root (CAP_NET_ADMIN and CAP_SYS_ADMIN)",)))
    monkeypatch.setattr(netns, "userns_available", lambda: False)
    instance = f"fb{os.getpid() % 100000}"
    port = str(32000 + (os.getpid() % 2000) * 10)
    try:
        assert main(["testbed", "up", "--sites", "cs-yungu", "--instance", instance,
                     "--listen-port", port]) == 0
        out = capsys.readouterr()
        assert "falling back to loopback mode" in out.err
        assert "mode loopback" in out.out
    finally:
        main(["testbed", "down", "--instance", instance])

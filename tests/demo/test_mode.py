"""Which testbed mode the demo picks, and the one-line error when namespaces are demanded but
unavailable."""

from __future__ import annotations

import pytest

import ixmeter.demo as demo
from ixmeter.demo.plan import DemoError
from testbed import netns


def _privileges(missing: tuple[str, ...]) -> netns.Privileges:
    return netns.Privileges(missing)


def test_loopback_when_namespaces_are_not_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "check_privileges", lambda: _privileges(("root (CAP_NET_ADMIN)",)))
    mode, why = demo.choose_mode("auto")
    assert mode == "loopback"
    assert "root (CAP_NET_ADMIN)" in why


def test_netns_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "check_privileges", lambda: _privileges(()))
    assert demo.choose_mode("auto")[0] == "netns"
    assert demo.choose_mode("loopback")[0] == "loopback"


def test_netns_demanded_without_privileges_names_what_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "check_privileges",
                        lambda: _privileges(("/dev/net/tun (load the tun module: modprobe tun)",)))
    with pytest.raises(DemoError, match="/dev/net/tun") as info:
        demo.choose_mode("netns")
    assert "--mode loopback" in (info.value.hint or "")

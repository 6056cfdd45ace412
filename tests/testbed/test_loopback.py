"""Loopback mode: the unprivileged UDP delay line (runs as any user)."""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from inventory.schema import Selector
from testbed.api import Testbed
from testbed.profiles import BUILTIN, JitterSpec, LossSpec, Override, PathClass

FLAT = PathClass(jitter=JitterSpec(), loss=LossSpec())
PROFILE = BUILTIN["direct"].model_copy(update={
    "name": "loop", "inter": FLAT, "intra": FLAT,
    "overrides": [Override(src=Selector(carriers=["CT"]), dst=Selector(carriers=["CM"]),
                           one_way_ms=5.0)]})


@pytest.fixture
def bed() -> Iterator[Testbed]:
    base = 30000 + (os.getpid() % 2000) * 10
    tb = Testbed.up_loopback(profile=PROFILE, sites=["cs-yungu"],
                             instance=f"lb{os.getpid() % 100000}", listen_port=base)
    try:
        yield tb
    finally:
        tb.down()


def _echo(port: int, stop: threading.Event) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))
        s.settimeout(0.1)
        while not stop.is_set():
            try:
                data, addr = s.recvfrom(2048)
            except TimeoutError:
                continue
            s.sendto(data, addr)


def test_delay_line_adds_both_directions(bed: Testbed) -> None:
    assert bed.mode == "loopback"
    assert bed.hosts["cs-yungu-cm"].v4 == "127.0.0.1"
    stop = threading.Event()
    refl = threading.Thread(target=_echo, args=(bed.reflector_port("cs-yungu-cm"), stop))
    refl.start()
    try:
        rtts = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            for i in range(20):
                t0 = time.monotonic()
                s.sendto(i.to_bytes(4, "big"), ("127.0.0.1", bed.path_port("cs-yungu-ct",
                                                                           "cs-yungu-cm")))
                assert s.recvfrom(2048)[0] == i.to_bytes(4, "big")
                rtts.append((time.monotonic() - t0) * 1000)
    finally:
        stop.set()
        refl.join()
    assert min(rtts) >= 10.0 - 0.01  # 5 ms each way, never early
    assert statistics.median(rtts) < 10.0 + 15.0  # trio sleep grain on a shared machine

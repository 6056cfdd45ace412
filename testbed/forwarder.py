"""The emulator's forwarding decisions, sans-IO: fed ``(host, packet, now_ns)``, asked which
packets are due at ``now_ns``. The trio loop in :mod:`testbed.emulator` does the reading,
writing and timing.

Per packet: find the directed path by destination address; if its TTL / hop limit runs out on
the route, answer ICMP Time Exceeded from that hop after the round trip to it (RFC 1812
§5.3.1, RFC 8200 §3, RFC 4443 §3.3); otherwise draw loss, delay and duplication for the path
and deliver it with the TTL lowered by the number of hops.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ixmeter.core.errors import MalformedPacket
from testbed.impair import PathState
from testbed.packets import packed, parse, time_exceeded, with_ttl
from testbed.plan import Host, PathPlan, path_seed
from testbed.profiles import Profile

LATENESS_SAMPLES = 20_000  # release lateness kept for status (the most recent packets)


@dataclass(slots=True)
class _Path:
    plan: PathPlan
    state: PathState
    hop_v4: tuple[bytes, ...]
    hop_v6: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Statistics:
    """Counters since start: packets in, delivered (including duplicates), lost by the loss
    model, expired (Time Exceeded sent), and dropped locally for being malformed or having no
    emulated destination."""

    received: int
    delivered: int
    lost: int
    duplicated: int
    expired: int
    unroutable: int
    malformed: int
    queued: int


class Forwarder:
    """Routing table, per-path impairment state and the release queue of one emulator."""

    def __init__(self, hosts: Sequence[Host], paths: Mapping[tuple[str, str], PathPlan],
                 profile: Profile, advance_ns: int = 0) -> None:
        self.advance_ns = advance_ns
        self.hosts = list(hosts)
        self.index = {h.name: i for i, h in enumerate(self.hosts)}
        self.by_address = {packed(a): i for i, h in enumerate(self.hosts) for a in h.addresses}
        self.count: Counter[str] = Counter()
        self.path_count: Counter[tuple[int, int, str]] = Counter()
        self._queue: list[tuple[int, int, int, bytes]] = []
        self._seq = 0
        self.lateness_ns: deque[int] = deque(maxlen=LATENESS_SAMPLES)
        self.profile = profile
        self._paths: dict[tuple[int, int], _Path] = {}
        self.set_paths(paths, profile)

    def set_paths(self, paths: Mapping[tuple[str, str], PathPlan], profile: Profile) -> None:
        """Switch to a new profile; packets already in flight keep their release times."""
        self.install(self.build_table(paths, profile), profile)

    def build_table(self, paths: Mapping[tuple[str, str], PathPlan],
                    profile: Profile) -> dict[tuple[int, int], _Path]:
        """The per-path state for ``paths`` (slow for many hosts: build it off the data plane,
        then :meth:`install` it there)."""
        table = {}
        for (src, dst), plan in paths.items():
            if src in self.index and dst in self.index:
                state = PathState(plan.direction, path_seed(profile, src, dst))
                table[(self.index[src], self.index[dst])] = _Path(
                    plan, state, tuple(packed(h.v4) for h in plan.hops),
                    tuple(packed(h.v6) for h in plan.hops))
        return table

    def install(self, table: dict[tuple[int, int], _Path], profile: Profile) -> None:
        """Swap in a table from :meth:`build_table` (constant time)."""
        self._paths = table
        self.profile = profile

    def receive(self, src: int, packet: bytes, now_ns: int) -> None:
        """A packet host ``src`` sent into the network; the emulator read it at ``now_ns``.

        Its delay is counted from ``now_ns - advance_ns``: the calibrated median time between a
        packet entering the TUN device and the emulator reading it (RFC 7679 §3.7.3 treats the
        calibrated median as systematic error to remove). 0 by default.
        """
        now_ns -= self.advance_ns
        self.count["received"] += 1
        try:
            view = parse(packet)
        except MalformedPacket:
            self.count["malformed"] += 1
            return
        dst = self.by_address.get(view.dst)
        path = self._paths.get((src, dst)) if dst is not None else None
        if path is None or dst is None:
            self.count["unroutable"] += 1
            return
        n = len(path.plan.hops)
        if view.ttl <= n:
            self._expire(src, path, packet, max(view.ttl, 1), view.version, now_ns)
            return
        self.path_count[(src, dst, "sent")] += 1
        times = path.state.release_times(now_ns)
        if not times:
            self.count["lost"] += 1
            self.path_count[(src, dst, "lost")] += 1
            return
        self.count["duplicated"] += len(times) - 1
        out = with_ttl(packet, view.ttl - n)
        for t in times:
            self._push(t, dst, out)

    def _expire(self, src: int, path: _Path, packet: bytes, hop: int, version: int,
                now_ns: int) -> None:
        addr = (path.hop_v4 if version == 4 else path.hop_v6)[hop - 1]
        reply = time_exceeded(packet, addr)
        if reply is None:
            self.count["unroutable"] += 1
            return
        self.count["expired"] += 1
        rtt_ms = path.plan.expiry_ms[hop - 1]
        self._push(now_ns + int((rtt_ms + path.state.spec.jitter.sample(path.state.rng, rtt_ms))
                                * 1e6), src, reply)

    def _push(self, deadline_ns: int, dst: int, packet: bytes) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (deadline_ns, self._seq, dst, packet))

    def next_deadline(self) -> int | None:
        """Release time of the earliest queued packet, if any."""
        return self._queue[0][0] if self._queue else None

    def pop_due(self, now_ns: int) -> list[tuple[int, bytes]]:
        """Every (host index, packet) whose release time is at or before ``now_ns``."""
        out = []
        while self._queue and self._queue[0][0] <= now_ns:
            deadline, _, dst, pkt = heapq.heappop(self._queue)
            self.lateness_ns.append(now_ns - deadline)
            out.append((dst, pkt))
        self.count["delivered"] += len(out)
        return out

    def lateness_us(self) -> dict[str, float]:
        """How late recent packets left the queue against their release time: the emulator's
        own timing error (:func:`summary_us`)."""
        return summary_us(self.lateness_ns)

    def statistics(self) -> Statistics:
        c = self.count
        return Statistics(c["received"], c["delivered"], c["lost"], c["duplicated"],
                          c["expired"], c["unroutable"], c["malformed"], len(self._queue))


def summary_us(samples_ns: Iterable[int]) -> dict[str, float]:
    """Minimum, median, p99 and maximum (RFC 2330 §11.3 percentiles) of ``samples_ns``, in
    us, and their number; empty for no samples."""
    xs = sorted(samples_ns)
    if not xs:
        return {}
    pick = {"min": 0.0, "p50": 0.5, "p99": 0.99, "max": 1.0}
    return {k: round(xs[max(0, math.ceil(q * len(xs)) - 1)] / 1000, 1)
            for k, q in pick.items()} | {"n": len(xs)}

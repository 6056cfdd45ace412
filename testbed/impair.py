"""Pure impairment models: delay jitter, independent and Gilbert-Elliott loss, reordering and
duplication. Every draw comes from a caller-supplied seeded ``random.Random``.

Definitions:
  Gilbert-Elliott two-state loss: Gilbert (1960), Elliott (1963); parameters named as in
  Hasslinger & Hohlfeld, "The Gilbert-Elliott model for packet loss in real time services on
  the Internet" (MMB 2008) and Linux netem ``gemodel``: p = P(good->bad), r = P(bad->good),
  loss 1-k in the good state and 1-h in the bad one. Loss periods: RFC 3357 §4.
  Pareto (Lomax) jitter: scale * (U^(-1/shape) - 1), heavy tailed like netem's ``pareto`` table.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

JitterDist = Literal["none", "normal", "pareto"]


@dataclass(frozen=True, slots=True)
class Jitter:
    """Delay variation added to a path's base delay, in ms.

    ``normal``: N(0, sigma) clipped to [-min(3 sigma, floor), cap] so the total stays positive.
    ``pareto``: Lomax(scale=sigma, shape), only adds delay, clipped at ``cap_ms``.
    """

    dist: JitterDist = "none"
    sigma_ms: float = 0.0
    shape: float = 3.0
    cap_ms: float = 50.0

    def sample(self, rng: random.Random, floor_ms: float) -> float:
        """One jitter value in ms; ``floor_ms`` is the base delay it may not cancel."""
        if self.dist == "none" or self.sigma_ms <= 0:
            return 0.0
        if self.dist == "normal":
            low = -min(3 * self.sigma_ms, floor_ms)
            return float(min(max(rng.gauss(0.0, self.sigma_ms), low), self.cap_ms))
        u = 1.0 - rng.random()  # (0, 1]
        return float(min(self.sigma_ms * (u ** (-1.0 / self.shape) - 1.0), self.cap_ms))


@dataclass(frozen=True, slots=True)
class Loss:
    """Loss model of one direction of a path.

    ``rate`` alone: independent (Bernoulli) loss. With ``burst`` > 1: a simple Gilbert model
    (k = 1, h = 0) with mean loss ``rate`` and mean loss-period length ``burst`` (r = 1/burst,
    p = rate * r / (1 - rate): stationary P(bad) = p / (p + r) = rate).
    """

    rate: float = 0.0
    burst: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"loss rate {self.rate} not in [0, 1)")
        if self.burst < 1.0:
            raise ValueError(f"mean loss burst {self.burst} < 1 packet")

    @property
    def gilbert(self) -> tuple[float, float] | None:
        """(p, r) of the equivalent Gilbert model, or None for independent loss."""
        if self.burst <= 1.0 or self.rate == 0.0:
            return None
        r = 1.0 / self.burst
        return self.rate * r / (1.0 - self.rate), r


class GilbertElliott:
    """Two-state Markov loss process; one step per packet (Gilbert-Elliott, see module doc)."""

    def __init__(self, p: float, r: float, k: float = 1.0, h: float = 0.0) -> None:
        for name, v in (("p", p), ("r", r), ("k", k), ("h", h)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"Gilbert-Elliott {name}={v} not in [0, 1]")
        self.p, self.r, self.k, self.h = p, r, k, h
        self.bad = False

    @property
    def mean_loss(self) -> float:
        """Stationary loss: pi_B (1 - h) + pi_G (1 - k), pi_B = p / (p + r)."""
        if self.p + self.r == 0:
            return 1.0 - self.k
        pi_bad = self.p / (self.p + self.r)
        return pi_bad * (1 - self.h) + (1 - pi_bad) * (1 - self.k)

    def lost(self, rng: random.Random) -> bool:
        """Advance one packet; True if that packet is lost."""
        if self.bad:
            self.bad = rng.random() >= self.r
        else:
            self.bad = rng.random() < self.p
        keep = self.h if self.bad else self.k
        return rng.random() >= keep


@dataclass(frozen=True, slots=True)
class Direction:
    """Everything that impairs one direction of one path (besides its route)."""

    delay_ms: float
    jitter: Jitter = Jitter()
    loss: Loss = Loss()
    reorder: float = 0.0  # probability a packet is held back by ``reorder_ms``
    reorder_ms: float = 1.0
    duplicate: float = 0.0  # probability a packet is sent twice


class PathState:
    """Per-direction runtime state: loss process, FIFO release order, its own RNG stream.

    Without reordering a path is FIFO like a real link: a packet never leaves before the one in
    front of it, even when jitter would say so (RFC 4737 §3 defines reordering against this).
    """

    def __init__(self, spec: Direction, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        ge = spec.loss.gilbert
        self.ge = GilbertElliott(*ge) if ge else None
        self.last_ns = 0

    def is_lost(self) -> bool:
        """Draw the loss indicator of the next packet (RFC 7680 §2.4)."""
        if self.ge is not None:
            return self.ge.lost(self.rng)
        return self.spec.loss.rate > 0 and self.rng.random() < self.spec.loss.rate

    def delay_ns(self, extra_ms: float = 0.0) -> int:
        """One draw of this direction's delay plus ``extra_ms``, in ns."""
        base = self.spec.delay_ms + extra_ms
        return int((base + self.spec.jitter.sample(self.rng, base)) * 1e6)

    def release_times(self, now_ns: int) -> list[int]:
        """Release times (monotonic ns) for a packet arriving at ``now_ns``: [] when lost, two
        when duplicated."""
        if self.is_lost():
            return []
        spec = self.spec
        if spec.reorder > 0 and self.rng.random() < spec.reorder:
            out = [now_ns + self.delay_ns(spec.reorder_ms)]  # held back; does not block others
        else:
            out = [max(now_ns + self.delay_ns(), self.last_ns)]
            self.last_ns = out[0]
        if spec.duplicate > 0 and self.rng.random() < spec.duplicate:
            out.append(out[0] + 1000)
        return out

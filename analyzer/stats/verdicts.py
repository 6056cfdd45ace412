"""Verdict rules: PASS / FAIL / INCONCLUSIVE / NOT EVALUABLE from intervals and gates.

Pure functions (methodology-notes §4 and §5):

- a ratio R = current/baseline against a reduction target with threshold theta = 1 - reduction
  (or a reference ratio against ``at_most_ratio``): with the two-sided 95% interval [L, U],
  PASS if U <= theta, FAIL if L > theta, else INCONCLUSIVE. Declaring PASS only when the
  95% interval lies inside the bound is the TOST / non-inferiority construction at one-sided
  alpha = 0.025 (Schuirmann 1987; SAS PROC TTEST "TOST");
- an absolute statistic d with clock-error bound E against T: PASS if U + E < T, FAIL if
  L - E >= T (RFC 7679 §3.7.3: the error bound enters the comparison);
- one-way gates: unsynchronised clocks -> NOT EVALUABLE (RFC 4656 §4.1.2 S bit; RFC 8972 §5.4
  free-running); d <= 0 -> clock fault (RFC 7679 §3.5); E/d > 0.1 -> clock-limited (our policy
  on RFC 7679 §3.7.3 "a significant fraction"); the clock-free bound: both one-way delays are
  below RTT_net, so RTT_net < T proves both below T and RTT_net >= 2T proves one at or above T;
- per-pair lists: Holm's step-down correction (Holm 1979) of the one-sided p-values, so a pair
  listed as PASS (or FAIL) keeps the family-wise error at 0.025 over the list.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace

from analyzer.stats.intervals import Interval, holm

ALPHA_ONE_SIDED = 0.025
CLOCK_LIMITED_FRACTION = 0.1


class Verdict(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_EVALUABLE = "NOT EVALUABLE"


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict, the rule or gate that decided it, and the p-values behind it."""

    verdict: Verdict
    reason: str
    p_pass: float = 1.0
    p_fail: float = 1.0


def decide_ratio(iv: Interval, theta: float) -> Decision:
    """PASS if U <= theta, FAIL if L > theta, else INCONCLUSIVE (methodology-notes §4)."""
    if iv.high <= theta:
        return Decision(Verdict.PASS, f"95% CI upper {iv.high:.4g} <= {theta:.4g}",
                        iv.p_below, iv.p_above)
    if iv.low > theta:
        return Decision(Verdict.FAIL, f"95% CI lower {iv.low:.4g} > {theta:.4g}",
                        iv.p_below, iv.p_above)
    return Decision(Verdict.INCONCLUSIVE,
                    f"95% CI [{iv.low:.4g}, {iv.high:.4g}] contains {theta:.4g}",
                    iv.p_below, iv.p_above)


def _fmt(value: float, scale: float, unit: str) -> str:
    return f"{value / scale:.4g}{unit}"


def decide_absolute(iv: Interval, limit: float, clock_error: float = 0.0, scale: float = 1.0,
                    unit: str = "") -> Decision:
    """PASS if U + E < T, FAIL if L - E >= T, else INCONCLUSIVE (methodology-notes §5.4).
    ``scale`` and ``unit`` only format the reason (1e6, " ms" for delays in ns)."""
    e = clock_error
    lo, hi, lim = (_fmt(v, scale, unit) for v in (iv.low, iv.high, limit))
    err = f" +- E {_fmt(e, scale, unit)}" if e else ""
    if iv.high + e < limit:
        return Decision(Verdict.PASS, f"95% CI upper {hi}{err} < {lim}", iv.p_below,
                        iv.p_above)
    if iv.low - e >= limit:
        return Decision(Verdict.FAIL, f"95% CI lower {lo}{err} >= {lim}", iv.p_below,
                        iv.p_above)
    return Decision(Verdict.INCONCLUSIVE, f"95% CI [{lo}, {hi}]{err} straddles {lim}",
                    iv.p_below, iv.p_above)


def clock_gate(unsynced: int, value: float, clock_error: float) -> Decision | None:
    """The §5 gates for a one-way statistic; None when it may be judged. A clock-limited value
    is still judged: :func:`clock_limited` flags it."""
    if unsynced > 0:
        return Decision(Verdict.NOT_EVALUABLE,
                        f"clocks unsynchronised for {unsynced} one-way samples")
    if value <= 0:
        return Decision(Verdict.NOT_EVALUABLE,
                        f"clock fault: one-way statistic {value:.4g} <= 0 (RFC 7679 §3.5)")
    return None


def clock_limited(value: float, clock_error: float) -> bool:
    """E/d > 0.1: the bound is a significant fraction of the value (RFC 7679 §3.7.3)."""
    return value > 0 and clock_error / value > CLOCK_LIMITED_FRACTION


def clock_free(rtt_net: Interval, limit: float, scale: float = 1e6,
               unit: str = " ms") -> Decision | None:
    """Decide a one-way target from RTT_net alone: U < T -> PASS, L >= 2T -> FAIL."""
    hi, lo, lim = (_fmt(v, scale, unit) for v in (rtt_net.high, rtt_net.low, limit))
    if rtt_net.high < limit:
        return Decision(Verdict.PASS, f"clock-free bound: RTT_net 95% upper {hi} < {lim}, so "
                        "both directions are below it", rtt_net.p_below)
    if rtt_net.low >= 2 * limit:
        return Decision(Verdict.FAIL, f"clock-free bound: RTT_net 95% lower {lo} >= 2 x {lim},"
                        " so one direction is at or above it", 1.0, rtt_net.p_above)
    return None


def both_directions(fwd: Decision, bwd: Decision) -> Decision:
    """Combine the two one-way decisions (each direction must meet the target)."""
    pair = (fwd.verdict, bwd.verdict)
    reason = f"forward: {fwd.reason}; backward: {bwd.reason}"
    p_pass, p_fail = max(fwd.p_pass, bwd.p_pass), min(fwd.p_fail, bwd.p_fail)
    if Verdict.FAIL in pair:
        return Decision(Verdict.FAIL, reason, p_pass, p_fail)
    if Verdict.NOT_EVALUABLE in pair:
        return Decision(Verdict.NOT_EVALUABLE, reason, p_pass, p_fail)
    if pair == (Verdict.PASS, Verdict.PASS):
        return Decision(Verdict.PASS, reason, p_pass, p_fail)
    return Decision(Verdict.INCONCLUSIVE, reason, p_pass, p_fail)


def holm_adjust(decisions: Sequence[Decision]) -> list[tuple[Decision, float, float]]:
    """Holm-adjust the PASS and FAIL p-values over a per-pair list; a PASS or FAIL whose
    adjusted p-value exceeds 0.025 becomes INCONCLUSIVE. Returns (decision, adj_pass,
    adj_fail) in input order; NOT EVALUABLE rows take no part."""
    idx = [i for i, d in enumerate(decisions) if d.verdict is not Verdict.NOT_EVALUABLE]
    adj_pass = holm([decisions[i].p_pass for i in idx])
    adj_fail = holm([decisions[i].p_fail for i in idx])
    out = [(d, d.p_pass, d.p_fail) for d in decisions]
    for j, i in enumerate(idx):
        d = decisions[i]
        if d.verdict is Verdict.PASS and adj_pass[j] > ALPHA_ONE_SIDED:
            d = replace(d, verdict=Verdict.INCONCLUSIVE,
                        reason=f"{d.reason}; not significant after Holm over {len(idx)} "
                               f"(adjusted p {adj_pass[j]:.3g})")
        elif d.verdict is Verdict.FAIL and adj_fail[j] > ALPHA_ONE_SIDED:
            d = replace(d, verdict=Verdict.INCONCLUSIVE,
                        reason=f"{d.reason}; not significant after Holm over {len(idx)} "
                               f"(adjusted p {adj_fail[j]:.3g})")
        out[i] = (d, adj_pass[j], adj_fail[j])
    return out

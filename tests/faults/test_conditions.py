"""Composite conditions in three-valued logic (analyzer.conditions)."""

from __future__ import annotations

import math

import pytest

from analyzer.conditions import judge, statistics, uses_reference
from inventory.schema import Condition, Threshold

TH = {t.id: t for t in (
    Threshold(id="d35", name={"zh": "35", "en": "35"}, value=35, unit="ms", source="art. 2"),
    Threshold(id="l05", name={"zh": "0.5", "en": "0.5"}, value=0.5, unit="percent",
              source="art. 2"),
    Threshold(id="m25", name={"zh": "25", "en": "25"}, value=25, unit="percent",
              source="art. 2"),
    Threshold(id="tbd", name={"zh": "?", "en": "?"}, value=None, unit="ms",
              source="to be filled from Annex 4"))}
MS = 1e6


def _c(data: dict[str, object]) -> Condition:
    return Condition.model_validate(data)


RULE2 = _c({"any_of": [
    {"all_of": [{"statistic": "rtt_mean", "above": "d35"},
                {"statistic": "rtt_mean", "above_reference_by": "m25"}]},
    {"all_of": [{"statistic": "loss_ratio", "above": "l05"},
                {"statistic": "loss_ratio", "above_reference_by": "m25"}]}]})


@pytest.mark.parametrize(("delay", "loss", "ref_delay", "ref_loss", "outcome"), [
    (40, 0.0, 36, 0.0, False),  # above 35 ms, within 25 % of in-network
    (50, 0.0, 36, 0.0, True),  # above both
    (30, 0.0, 10, 0.0, False),  # far above in-network, below 35 ms
    (5, 0.02, 5, 0.008, True),  # loss above 0.5 % and 25 % above
    (5, 0.02, 5, 0.017, False),  # loss above 0.5 %, only 18 % above
    (5, 0.006, 5, 0.0, True),  # in-network loss 0: any loss above 0.5 % is more than 25 % above
])
def test_rule_two_as_written(delay: float, loss: float, ref_delay: float, ref_loss: float,
                             outcome: bool) -> None:
    got, checks = judge(RULE2, {"rtt_mean": delay * MS, "loss_ratio": loss},
                        {"rtt_mean": ref_delay * MS, "loss_ratio": ref_loss}, TH)
    assert got is outcome
    assert len(checks) == 4


def test_unknown_only_where_it_could_change_the_outcome() -> None:
    cond = _c({"any_of": [{"statistic": "rtt_mean", "at_least": "tbd"},
                          {"statistic": "loss_ratio", "above": "l05"}]})
    got, checks = judge(cond, {"rtt_mean": 40 * MS, "loss_ratio": 0.01}, None, TH)
    assert got is True  # the loss branch decides, the missing Annex 4 value does not matter
    got, checks = judge(cond, {"rtt_mean": 40 * MS, "loss_ratio": 0.0}, None, TH)
    assert got is None
    assert checks[0].missing == "threshold"
    assert "to be filled from Annex 4" in checks[0].why
    both = _c({"all_of": [{"statistic": "rtt_mean", "at_least": "tbd"},
                          {"statistic": "loss_ratio", "above": "l05"}]})
    assert judge(both, {"rtt_mean": 40 * MS, "loss_ratio": 0.0}, None, TH)[0] is False


def test_undefined_statistic_and_missing_reference_are_unknown() -> None:
    got, checks = judge(RULE2, {"rtt_mean": math.nan, "loss_ratio": 1.0}, None, TH,
                        no_reference="no PC/PD path")
    assert got is None
    assert [c.missing for c in checks] == ["value", "value", "", "reference"]
    assert checks[3].why == "no PC/PD path"


def test_boundaries_are_as_written() -> None:
    at = _c({"statistic": "rtt_mean", "at_least": "d35"})
    above = _c({"statistic": "rtt_mean", "above": "d35"})
    assert judge(at, {"rtt_mean": 35 * MS}, None, TH)[0] is True  # 达到: reaches
    assert judge(above, {"rtt_mean": 35 * MS}, None, TH)[0] is False  # 超过: exceeds
    ref = _c({"statistic": "rtt_mean", "above_reference_by": "m25"})
    assert judge(ref, {"rtt_mean": 12.5 * MS}, {"rtt_mean": 10 * MS}, TH)[0] is False
    assert judge(ref, {"rtt_mean": 12.6 * MS}, {"rtt_mean": 10 * MS}, TH)[0] is True


def test_what_a_condition_uses() -> None:
    assert statistics(RULE2) == {"rtt_mean", "loss_ratio"}
    assert uses_reference(RULE2)
    assert not uses_reference(_c({"statistic": "rtt_mean", "above": "d35"}))


@pytest.mark.parametrize(("data", "message"), [
    ({"all_of": []}, "needs at least one condition"),
    ({"statistic": "rtt_mean"}, "exactly one of 'above'"),
    ({"above": "d35"}, "'above' needs a 'statistic'"),
    ({"any_of": [{"statistic": "rtt_mean", "above": "d35"}], "statistic": "rtt_mean",
      "above": "d35"}, "exactly one of 'all_of', 'any_of'"),
])
def test_malformed_conditions(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _c(data)

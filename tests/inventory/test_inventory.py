"""The inventory loader: the Hunan seed, and one precise error per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory import InventoryError, Topology, default_inventory, load
from inventory.cli import summary
from ixmeter.cli import main

SEED = default_inventory()
TEXT = SEED.read_text(encoding="utf-8")


def _line_of(text: str, needle: str) -> int:
    """1-based line where ``needle`` (possibly several lines) starts."""
    index = text.find(needle)
    assert index >= 0, f"{needle!r} not in text"
    return text.count("\n", 0, index) + 1 + (1 if needle.startswith("\n") else 0)


def test_seed_has_the_plan_entities() -> None:
    inv = load(SEED)
    kinds = [s.kind.value for s in inv.sites]
    assert kinds.count("data_centre") == 15
    assert kinds.count("exchange_point") == 1
    assert kinds.count("hub") == 2
    assert {c.id for c in inv.carriers} == {"CT", "CM", "CU"}
    names = {s.name.zh for s in inv.sites}
    assert "长沙国家级互联网骨干直联点" in names
    assert "国家超级计算长沙中心" in names
    wanted = {"hn-inter-carrier-latency", "hn-inter-carrier-loss", "sd-intra-city-owd",
              "sd-inter-cluster-owd"}
    assert wanted <= {t.id for t in inv.policy_targets}


def test_every_probe_sits_where_its_carrier_is_and_is_dual_stack() -> None:
    inv = load(SEED)
    topo = Topology(inv)
    for probe in inv.probes:
        assert probe.carrier in topo.sites[probe.site].carriers
        versions = {6 if ":" in a else 4 for a in probe.addresses}
        assert versions == {4, 6}


def test_summary_counts_paths() -> None:
    text = summary(load(SEED))
    assert "15 data centre" in text
    assert "1 exchange point" in text
    assert "1482 (1012 inter-carrier, 470 intra-carrier)" in text


def test_cli_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "check", str(SEED)]) == 0
    assert "15 data centre" in capsys.readouterr().out


def _broken(tmp_path: Path, old: str, new: str, count: int = 1) -> tuple[Path, str]:
    assert old in TEXT, old
    text = TEXT.replace(old, new, count)
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text


CASES = [
    # (description, old, new, field, message part, line anchor in the broken text)
    ("unknown carrier", "carriers: [CT, CM, CU]\n    assumption: \"carrier-neutral: all three",
     "carriers: [CT, CM, XX]\n    assumption: \"carrier-neutral: all three",
     "sites[1].carriers[2]", "unknown carrier 'XX'", "carriers: [CT, CM, XX]"),
    ("duplicate id", "  - id: cs-cmcc\n", "  - id: cs-yungu\n", "sites[2].id",
     "duplicate id 'cs-yungu'", "  - id: cs-yungu\n    kind: data_centre\n    name: {zh: 中国移动"),
    ("missing coordinates", "    lat: 28.248\n", "", "sites[0]", "missing coordinates",
     "  - id: cs-tianyi-zn"),
    ("probe at a site lacking its carrier", "{id: cs-tianyi-zn-ct, site: cs-tianyi-zn, carrier: CT",
     "{id: cs-tianyi-zn-ct, site: cs-tianyi-zn, carrier: CM", "probes[0].carrier",
     "site 'cs-tianyi-zn' lacks carrier 'CM'", "{id: cs-tianyi-zn-ct"),
    ("impossible rate", "method: icmp, rate_pps: 1,", "method: icmp, rate_pps: -5,",
     "specs[0].rate_pps", "impossible rate -5", "{id: icmp-mesh"),
    ("ICMP size a probe cannot send", "method: icmp, rate_pps: 1, schedule: poisson, size: 64",
     "method: icmp, rate_pps: 1, schedule: poisson, size: 20", "specs[0].size",
     "size 20 is below the smallest icmp packet a probe sends, 24 octets", "{id: icmp-mesh"),
    ("STAMP size below the base packet", "method: stamp, rate_pps: 1, schedule: poisson, size: 44",
     "method: stamp, rate_pps: 1, schedule: poisson, size: 40", "specs[1].size",
     "size 40 is below the smallest stamp packet a probe sends, 44 octets", "{id: stamp-mesh"),
    ("outline latitude outside WGS-84", "[110.10, 29.80], [110.60, 30.10]",
     "[110.10, 29.80], [110.60, 95.10]", "provinces[0].outline[3][1]",
     "less than or equal to 90", "[110.10, 29.80], [110.60, 95.10]"),
    ("outline vertex of three numbers", "[109.30, 29.05], [109.50, 29.60]",
     "[109.30, 29.05, 1.0], [109.50, 29.60]", "provinces[0].outline[0]",
     "at most 2 items", "[109.30, 29.05, 1.0]"),
    ("outline of two vertices", "    outline: [\n      [109.30, 29.05], [109.50, 29.60],",
     "    outline: [[109.30, 29.05], [109.50, 29.60]]\n    x: [",
     "provinces[0].outline", "at least 3 items", "    outline: [[109.30"),
    ("unknown statistic", "statistic: rtt_median", "statistic: rtt_median_fast",
     "policy_targets[0].statistic", "unknown statistic 'rtt_median_fast'", "rtt_median_fast"),
    ("unknown field", "    per: city_pair\n", "    per: city_pair\n    colour: red\n",
     "policy_targets[2].colour", "unknown field", "colour: red"),
    ("bad address", "198.18.1.10,", "198.18.1.300,", "probes[0].addresses",
     "'198.18.1.300' is not an IPv4 or IPv6 address", "198.18.1.300"),
    ("segment at an unknown site", "  - id: csix-ct-cm-pb\n    role: PB\n    interconnect: cs-ixp",
     "  - id: csix-ct-cm-pb\n    role: PB\n    interconnect: cs-ixq", "segments[1].interconnect",
     "unknown site 'cs-ixq'", "interconnect: cs-ixq"),
    ("rule role no segment has", "    segments: [PB, PE]", "    segments: [PB, PF]",
     "fault_rules[0].segments[1]", "no segment has role 'PF'", "segments: [PB, PF]"),
    ("unknown threshold", "at_least: annex4-delay}", "at_least: annex5-delay}",
     "fault_rules[0].condition.any_of[0].at_least", "unknown threshold 'annex5-delay'",
     "annex5-delay"),
    ("threshold of the wrong unit", "{statistic: rtt_mean, above: a2-delay}",
     "{statistic: rtt_mean, above: a2-loss}",
     "fault_rules[1].condition.any_of[0].all_of[0].above",
     "threshold 'a2-loss' is in percent; rtt_mean above needs one in ms", "above: a2-loss}"),
    ("a test with two comparisons", "{statistic: loss_ratio, at_least: annex4-loss}",
     "{statistic: loss_ratio, at_least: annex4-loss, above: a2-loss}",
     "fault_rules[0].condition.any_of[1]", "exactly one of 'above', 'at_least'",
     "{statistic: loss_ratio, at_least: annex4-loss, above"),
    ("a statistic a rule cannot use", "{statistic: rtt_mean, at_least: annex4-delay}",
     "{statistic: owd_median, at_least: annex4-delay}", "fault_rules[0].condition.any_of[0]",
     "statistic 'owd_median' cannot be used in a fault rule",
     "{statistic: owd_median, at_least"),
    ("tests that do not tile a day", "      test_minutes: 60\n      min_samples: 100\n      "
     "min_tests: 2\n      consecutive_days: 3", "      test_minutes: 7\n      min_samples: 100"
     "\n      min_tests: 2\n      consecutive_days: 3", "fault_rules[0].calendar",
     "test_minutes 7 does not divide a day", "      timezone: Asia/Shanghai\n      hours"),
    ("unknown time zone", "      timezone: Asia/Shanghai\n      hours", "      timezone: "
     "Asia/Changsha\n      hours", "fault_rules[0].calendar.timezone",
     "unknown time zone 'Asia/Changsha'", "Asia/Changsha"),
    ("reference roles for a rule that has none", "    segments: [PB, PE]\n",
     "    segments: [PB, PE]\n    reference: [PC]\n", "fault_rules[0].reference",
     "reference roles given but no test uses them", "reference: [PC]"),
]


@pytest.mark.parametrize(("old", "new", "field", "message", "anchor"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_error_names_file_line_and_field(tmp_path: Path, old: str, new: str, field: str,
                                              message: str, anchor: str) -> None:
    path, text = _broken(tmp_path, old, new)
    with pytest.raises(InventoryError) as info:
        load(path)
    problems = info.value.problems
    matching = [p for p in problems if p.field == field]
    assert matching, [str(p) for p in problems]
    assert message in matching[0].message
    assert matching[0].file == str(path)
    assert matching[0].line == _line_of(text, anchor)


def test_seed_segments_and_fault_rules() -> None:
    inv = load(SEED)
    topo = Topology(inv)
    roles = {seg.role for seg in inv.segments}
    assert roles == {"PA", "PB", "PC", "PD", "PE"}
    assert all(seg.interconnect == "cs-ixp" for seg in inv.segments)
    pb = next(s for s in inv.segments if s.id == "csix-ct-cm-pb")
    assert [p.id for p in topo.segment_paths(pb)] == ["cs-ixp/CT>cs-ixp/CM"]
    assert {r.id: r.article.zh for r in inv.fault_rules} == {"class-a-1": "第五条（一）1",
                                                            "class-a-2": "第五条（一）2"}
    annex4 = [t for t in inv.thresholds if t.id.startswith("annex4")]
    assert annex4
    assert all(t.value is None and "to be filled from Annex 4" in t.source for t in annex4)
    titles = {t.document.title.zh for t in inv.policy_targets}
    assert titles == {"湖南省算力支撑能力提升行动方案（2022—2025年）",
                      "山东省算力基础设施高质量发展实施方案（征求意见稿）"}


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    path, text = _broken(tmp_path, "  - id: cs-cmcc\n", "  - id: [cs-cmcc\n")
    with pytest.raises(InventoryError) as info:
        load(path)
    [problem] = info.value.problems
    assert problem.field == "(syntax)"
    assert abs(problem.line - _line_of(text, "[cs-cmcc")) <= 1


def test_cli_check_reports_every_problem_and_fails(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _broken(tmp_path, "statistic: rtt_median", "statistic: nope")
    assert main(["inventory", "check", str(SEED), str(path)]) == 1
    out = capsys.readouterr()
    assert f"{path}:" in out.err
    assert "unknown statistic 'nope'" in out.err
    assert "inventory hunan: OK" in out.out


def test_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read"):
        load(tmp_path / "absent.yaml")

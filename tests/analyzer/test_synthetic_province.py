"""The generated province (analyzer.synthetic.province): a valid inventory whose specs select
exactly the mesh the benchmarks write and send, with the packaged inventory's targets and rules
unchanged."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from analyzer.synthetic.province import CITIES, generate
from inventory.cli import summary
from inventory.loader import default_inventory, load
from inventory.topology import Topology


def test_generated_province_loads_and_its_specs_select_the_mesh(tmp_path: Path) -> None:
    province = generate(1500, seed=3)
    inv = load(province.write(tmp_path))
    assert Counter(p.carrier for p in inv.probes) == {"CT": 50, "CM": 50, "CU": 50}
    assert {c.id for c in inv.cities} >= {c[0] for c in CITIES}
    topo = Topology(inv)
    selected = {(p.site, p.carrier, d.site, d.carrier, spec.method.value)
                for spec in inv.specs for p, d in topo.spec_paths(spec)}
    mesh = [(p.src_site, p.src_carrier, p.dst_site, p.dst_carrier, p.method)
            for p in province.all_paths]
    assert len(set(mesh)) == len(mesh)
    assert set(mesh) == selected
    assert 1500 <= len(mesh) <= 1650
    assert {(m, a != b) for _, a, _, b, m in mesh} >= {("icmp", True), ("stamp", False)}
    assert "inventory hunan-province: OK" in summary(inv)


def test_targets_and_rules_are_the_packaged_ones(tmp_path: Path) -> None:
    packaged = load(default_inventory())
    inv = load(generate(200).write(tmp_path))
    for section in ("policy_targets", "baselines", "segments", "thresholds", "fault_rules"):
        assert getattr(inv, section) == getattr(packaged, section), section
    assert inv.synthetic


def test_a_smaller_province_keeps_the_packaged_probes(tmp_path: Path) -> None:
    packaged = Counter(p.carrier for p in load(default_inventory()).probes)
    inv = load(generate(60, per_carrier=13).write(tmp_path))
    assert Counter(p.carrier for p in inv.probes) == {c: max(n, 13) for c, n in packaged.items()}

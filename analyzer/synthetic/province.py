"""The one synthetic topology: a province-scale inventory of Hunan, generated, and the meshes
the benchmarks measure (bench.province, bench.province_rate, bench.dashboard_load,
bench.store_tiers), each with its own size.

The packaged inventory (``inventory/hunan.yaml``) is loaded as data and its sites, probes and
measurement specs are replaced; its policy targets, baselines, segments, thresholds and fault
rules are kept as they are. What is generated:

* the 14 prefecture-level divisions of Hunan (GB/T 2260 codes 430100-431300 and 433100), each
  at its seat's approximate centre (WGS-84); the packaged file's city clusters, and two more
  (``xiangzhong``, ``xiangxi``, assumed);
* ``per_carrier`` probes per carrier (CT, CM, CU; 50 by default): the packaged file's 39 probes
  at its 17 real Hunan sites (15 data centres, the supercomputing centre, the Changsha
  direct-connect point), then one single-carrier site per carrier and city, then more in
  Changsha (a weight of 4) until each carrier has ``per_carrier`` (never fewer than the
  packaged file's); generated sites are ``edge`` (the schema's kind for a point of presence), or
  every third a ``data_centre``, every seventh a ``computing_centre``, and say so;
* a mesh of about ``paths`` directed paths, spread evenly over the probes. Each probe walks the
  sites in a seeded random order and measures every probe there until it has its share (the
  exchange point's probes start with their own site, so the fault rules' segments have paths):
  inter-carrier paths with ICMP, intra-carrier ones with STAMP (the one-way targets), except
  from the exchange point, whose probes measure all with ICMP (the fault rules are ICMP).
  Each probe's mesh is one or two specs whose selectors name the destination sites, so the
  inventory's own ``spec_paths`` are exactly the generated paths.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inventory.loader import default_inventory, load
from inventory.topology import Topology
from ixmeter.core.record import path_id

CARRIERS = ("CT", "CM", "CU")
CARRIER_ZH = {"CT": "中国电信", "CM": "中国移动", "CU": "中国联通"}
CARRIER_EN = {"CT": "China Telecom", "CM": "China Mobile", "CU": "China Unicom"}
# id, zh, en, GB/T 2260 code, lat, lon of the seat (approximate), cluster, site id prefix
CITIES = (
    ("changsha", "长沙", "Changsha", 430100, 28.228, 112.939, "changzhutan", "cs"),
    ("zhuzhou", "株洲", "Zhuzhou", 430200, 27.827, 113.134, "changzhutan", "zz"),
    ("xiangtan", "湘潭", "Xiangtan", 430300, 27.829, 112.944, "changzhutan", "xt"),
    ("hengyang", "衡阳", "Hengyang", 430400, 26.894, 112.572, "xiangnan", "hy"),
    ("shaoyang", "邵阳", "Shaoyang", 430500, 27.239, 111.468, "xiangzhong", "sy"),
    ("yueyang", "岳阳", "Yueyang", 430600, 29.357, 113.129, "dongting", "yyg"),
    ("changde", "常德", "Changde", 430700, 29.031, 111.699, "dongting", "cd"),
    ("zhangjiajie", "张家界", "Zhangjiajie", 430800, 29.117, 110.479, "xiangxi", "zjj"),
    ("yiyang", "益阳", "Yiyang", 430900, 28.554, 112.355, "dongting", "yy"),
    ("chenzhou", "郴州", "Chenzhou", 431000, 25.770, 113.015, "xiangnan", "cz"),
    ("yongzhou", "永州", "Yongzhou", 431100, 26.420, 111.613, "xiangnan", "yz"),
    ("huaihua", "怀化", "Huaihua", 431200, 27.570, 110.001, "xiangxi", "hh"),
    ("loudi", "娄底", "Loudi", 431300, 27.700, 111.994, "xiangzhong", "ld"),
    ("xiangxi", "湘西", "Xiangxi", 433100, 28.312, 109.739, "xiangxi", "xx"),
)
PER_CARRIER = 50
CHANGSHA_WEIGHT = 4
EXCHANGE = "cs-ixp"
_KIND_ZH = {"edge": "接入节点", "data_centre": "数据中心", "computing_centre": "算力中心"}
_KIND_EN = {"edge": "PoP", "data_centre": "Data Centre", "computing_centre": "Computing Centre"}
_V4_BASE = {"CT": 0, "CM": 64, "CU": 128}  # third octet of each carrier's 198.18.x.0/18


@dataclass(frozen=True, slots=True)
class MeshPath:
    """One measured directed path: its two (site, carrier) ends and the method measuring it."""

    src_site: str
    src_carrier: str
    dst_site: str
    dst_carrier: str
    method: str = "icmp"

    @property
    def inter(self) -> bool:
        return self.src_carrier != self.dst_carrier

    @property
    def id(self) -> str:
        return path_id(self.src_site, self.src_carrier, self.dst_site, self.dst_carrier)


@dataclass(frozen=True, slots=True)
class PlanProbe:
    id: str
    site: str
    carrier: str
    address: str


@dataclass
class Province:
    """A generated province: the inventory (as YAML data), its probes and its mesh."""

    inventory: dict[str, Any]
    probes: list[PlanProbe]
    paths: dict[str, list[MeshPath]]  # probe id -> the paths it measures

    @property
    def all_paths(self) -> list[MeshPath]:
        return [p for paths in self.paths.values() for p in paths]

    def same_city(self, path: MeshPath) -> bool:
        """Whether both ends of ``path`` are in one city."""
        cities = {s["id"]: s["city"] for s in self.inventory["sites"]}
        return bool(cities[path.src_site] == cities[path.dst_site])

    def address(self, site: str, carrier: str) -> str:
        return next(p.address for p in self.probes if (p.site, p.carrier) == (site, carrier))

    def write(self, directory: Path) -> Path:
        """The inventory as ``DIR/hunan-province.yaml``; its path."""
        directory.mkdir(parents=True, exist_ok=True)
        out = directory / "hunan-province.yaml"
        out.write_text(yaml.safe_dump(self.inventory, allow_unicode=True, sort_keys=False,
                                      width=100), encoding="utf-8")
        return out


def generate(paths: int, seed: int = 1, per_carrier: int = PER_CARRIER) -> Province:
    """A province of ``per_carrier`` probes per carrier and about ``paths`` directed paths (see
    the module doc)."""
    base = yaml.safe_load(default_inventory().read_text(encoding="utf-8"))
    cities = [c for c in base["cities"] if c["province"] != "HN"] + [
        {"id": cid, "name": {"zh": zh, "en": en}, "province": "HN", "lat": lat, "lon": lon,
         "cluster": cluster} for cid, zh, en, _code, lat, lon, cluster, _ in CITIES]
    sites, probes = list(base["sites"]), list(base["probes"])
    for site in _generated_sites(probes, per_carrier):
        sites.append(site)
        carrier = site["carriers"][0]
        n = sum(p["carrier"] == carrier for p in probes)
        v4 = f"198.18.{_V4_BASE[carrier] + n + 1}.10"
        v6 = f"2001:2:0:{CARRIERS.index(carrier) + 1}{n + 0x20:03x}::10"
        probes.append({"id": f"{site['id']}-{carrier.lower()}", "site": site["id"],
                       "carrier": carrier, "addresses": [v4, v6]})
    plan_probes = [PlanProbe(p["id"], p["site"], p["carrier"], p["addresses"][0])
                   for p in probes]
    mesh, specs = _mesh(plan_probes, sites, paths, seed)
    inv = {**base, "name": "hunan-province", "cities": cities, "sites": sites,
           "probes": probes, "specs": specs,
           "synthetic": "generated by analyzer.synthetic.province: sites beyond the packaged "
                        "inventory's and the whole mesh are invented, for measuring scale"}
    inv["assumptions"] = [*base["assumptions"],
                          "Generated by analyzer.synthetic.province: the sites marked "
                          "'generated' and the mesh are not a real deployment; city centres "
                          "are approximate."]
    return Province(inv, plan_probes, mesh)


def _generated_sites(probes: list[dict[str, Any]], per_carrier: int) -> list[dict[str, Any]]:
    """Single-carrier sites until each carrier has ``per_carrier`` probes: one per city first,
    then round the cities with Changsha weighted."""
    order = [c for c in CITIES] + [c for c in CITIES for _ in
                                   range(CHANGSHA_WEIGHT if c[0] == "changsha" else 1)] * 4
    out = []
    for carrier in CARRIERS:
        have = sum(p["carrier"] == carrier for p in probes)
        for k, (cid, zh, en, _code, lat, lon, _cl, short) in enumerate(
                order[:max(0, per_carrier - have)]):
            kind = "computing_centre" if k % 7 == 6 else "data_centre" if k % 3 == 2 \
                else "edge"
            n = k + 1
            out.append({
                "id": f"{short}-{carrier.lower()}-{n}", "kind": kind,
                "name": {"zh": f"{CARRIER_ZH[carrier]}{zh}{_KIND_ZH[kind]}{n}",
                         "en": f"{CARRIER_EN[carrier]} {en} {_KIND_EN[kind]} {n}"},
                "city": cid, "lat": round(lat + 0.01 * ((n * 7) % 9 - 4), 3),
                "lon": round(lon + 0.01 * ((n * 5) % 9 - 4), 3), "carriers": [carrier],
                "assumption": "generated by analyzer.synthetic.province (not a real site)"})
    return out


def _mesh(probes: list[PlanProbe], sites: list[dict[str, Any]], total: int, seed: int
          ) -> tuple[dict[str, list[MeshPath]], list[dict[str, Any]]]:
    """Each probe's paths and the specs that select exactly them."""
    rng = random.Random(seed)
    at: dict[str, list[PlanProbe]] = {}
    for p in probes:
        at.setdefault(p.site, []).append(p)
    site_ids = [s["id"] for s in sites if s["id"] in at]
    mesh: dict[str, list[MeshPath]] = {}
    specs: list[dict[str, Any]] = []
    for i, probe in enumerate(probes):
        share = total // len(probes) + (i < total % len(probes))
        order = rng.sample(site_ids, len(site_ids))
        if probe.site == EXCHANGE:
            order.remove(EXCHANGE)
            order.insert(0, EXCHANGE)
        chosen: dict[str, list[str]] = {"icmp": [], "stamp": []}
        paths: list[MeshPath] = []
        for site in order:
            if len(paths) >= share:
                break
            for dst in at[site]:
                if dst.id == probe.id:
                    continue
                method = "icmp" if dst.carrier != probe.carrier or probe.site == EXCHANGE \
                    else "stamp"
                paths.append(MeshPath(probe.site, probe.carrier, site, dst.carrier, method))
                if site not in chosen[method]:
                    chosen[method].append(site)
        mesh[probe.id] = paths
        specs += _specs(probe, chosen)
    return mesh, specs


def _specs(probe: PlanProbe, chosen: dict[str, list[str]]) -> list[dict[str, Any]]:
    others = [c for c in CARRIERS if c != probe.carrier]
    out = []
    for method, sites in chosen.items():
        if not sites:
            continue
        carriers = list(CARRIERS) if probe.site == EXCHANGE else \
            others if method == "icmp" else [probe.carrier]
        out.append({"id": f"{probe.id}-{method}", "method": method, "rate_pps": 1,
                    "schedule": "poisson", "size": 64 if method == "icmp" else 44,
                    "tmax_s": 3, "ip_versions": [4],
                    "sources": {"sites": [probe.site], "carriers": [probe.carrier]},
                    "destinations": {"sites": sites, "carriers": carriers}})
    return out


def inventory_paths(limit: int) -> list[MeshPath]:
    """ICMP paths between the packaged inventory's Hunan (site, carrier) ends, inter-carrier
    first, one in five intra-carrier (what bench.store_tiers measures)."""
    inv = load(default_inventory())
    topo = Topology(inv)
    ends = sorted({(s.id, c) for s in inv.sites for c in s.carriers
                   if topo.province_of(s.id) == "HN"})
    pairs = [MeshPath(a, ac, b, bc) for a, ac in ends for b, bc in ends if (a, ac) != (b, bc)]
    inter = sorted((p for p in pairs if p.inter), key=lambda p: p.id)
    intra = sorted((p for p in pairs if not p.inter), key=lambda p: p.id)
    take = min(len(intra), limit // 5)
    return inter[:limit - take] + intra[:take]

"""``ixmeter faults`` (table, JSON) and ``--watch`` (daily evaluation, Prometheus metrics) on a
real store; the metrics and the documented alerting rule checked with promtool when installed."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest

from analyzer.cli.faults import configure, load_inventory, open_existing
from analyzer.fault_register import Register
from analyzer.faults_watch import Watch, last_complete_day, run_watch
from inventory.loader import load
from ixmeter.cli import main
from tests.faults.history import INVENTORY, SHANGHAI, write_plan
from tests.faults.test_known_truth import _plan

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--inventory", str(INVENTORY)]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults-cli") / "store.db"
    write_plan(path, _plan())
    return path


def _ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=SHANGHAI).timestamp()) * 10**9


def test_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["faults", "--db", str(db), "--from", "2026-04-01", "--to", "2026-04-06",
                 *ARGS]) == 0
    out = capsys.readouterr().out
    assert "r2 (2, class A): 2 series, 1 faults (0 open)" in out
    assert re.search(r"r1 +PE ab-pe +B>A +ix/B>ix/A .* 2026-04-04 +2026-04-06 +OPEN", out)
    assert "loss_ratio 2.08 % > in-network 0.833 % x (1 + 25 %) = 1.04 %" in out


def test_json_is_reproducible_and_fills_the_form(db: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["faults", "--db", str(db), "--from", "2026-04-02", "--to", "2026-04-02", "--rule",
            "r2", "--json", *ARGS]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    doc = json.loads(first)
    (fault,) = doc["faults"]
    assert fault["form"]["direction"] == {"zh": "乙→甲", "en": "Carrier B -> Carrier A"}
    assert fault["form"]["test_time"] == {"from": "2026-04-02 20:00", "to": "2026-04-02 23:00",
                                          "timezone": "Asia/Shanghai"}
    assert fault["form"]["fault_class"]["zh"] == "A类障碍"
    assert doc["provenance"]["store_chain_head"]["length"] > 0
    assert [r["id"] for r in doc["rules"]] == ["r2"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--from", "2026-04-31"], "is not a date"),
    (["--from", "2026-04-03", "--to", "2026-04-01"], "is before --from"),
    (["--from", "2026-04-01", "--rule", "r9"], "unknown fault rule 'r9'"),
    ([], "--from is required"),
])
def test_bad_arguments(db: Path, argv: list[str], message: str,
                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["faults", "--db", str(db), *ARGS, *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_rule_is_due_after_its_hours_and_the_grace() -> None:
    inv = load(INVENTORY)
    r1 = next(r for r in inv.fault_rules if r.id == "r1")  # busy hours 20-22 local
    r2 = next(r for r in inv.fault_rules if r.id == "r2")  # the whole local day
    d = (date(2026, 4, 6) - date(1970, 1, 1)).days
    assert last_complete_day(r1, _ns(2026, 4, 6, 23, 29), 30) == d - 1
    assert last_complete_day(r1, _ns(2026, 4, 6, 23, 30), 30) == d
    assert last_complete_day(r2, _ns(2026, 4, 6, 23, 30), 30) == d - 1
    assert last_complete_day(r2, _ns(2026, 4, 7, 0, 30), 30) == d


def test_watch_evaluates_each_day_once() -> None:
    inv = load(INVENTORY)
    seen: list[tuple[str, date, date]] = []

    def evaluate(rule: object, first: date, last: date) -> Register:
        seen.append((getattr(rule, "id", ""), first, last))
        return Register(first.isoformat(), last.isoformat(), [], [], [])

    w = Watch(inv, evaluate, lookback=7, grace_minutes=30)
    assert sorted(w.tick(_ns(2026, 4, 7, 1, 0))) == ["r1", "r1-pending", "r1-utc", "r2"]
    assert ("r1", date(2026, 3, 31), date(2026, 4, 6)) in seen
    assert w.tick(_ns(2026, 4, 7, 9, 0)) == ["r1-utc"]  # the UTC day 04-06 ended at 08:00
    assert w.tick(_ns(2026, 4, 7, 12, 0)) == []
    assert sorted(w.tick(_ns(2026, 4, 7, 23, 45))) == ["r1", "r1-pending"]


class _Stop(Exception):
    pass


def test_watch_serves_open_faults_as_metrics(db: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--db", str(db), "--watch", "--metrics", "127.0.0.1:0",
                              "--lookback-days", "7", *ARGS])
    port: list[int] = []
    texts: list[str] = []

    def sleep(seconds: float) -> None:
        texts.append(httpx.get(f"http://127.0.0.1:{port[0]}/metrics", timeout=10).text)
        raise _Stop

    with pytest.raises(_Stop):
        run_watch(args, load_inventory(args.inventory)[0], lambda: open_existing(args.db),
                  clock=lambda: _ns(2026, 4, 7, 9, 0), sleep=sleep,
                  started=port.append)
    text = texts[0]
    opened = [line for line in text.splitlines() if line.startswith("ixmeter_fault_open{")]
    assert len(opened) == 2  # r1 and r1-utc on PE: open since 04-04
    assert all('path="ix/B>ix/A"' in line and line.endswith(" 1.0") for line in opened)
    assert 'ixmeter_fault_rule_open_faults{article="2",rule="r2"} 0.0' in text
    stamp = _ns(2026, 4, 7, 9, 0) / 1e9
    assert f"ixmeter_faults_last_evaluation_timestamp_seconds {stamp:.8g}" in text
    if shutil.which("promtool"):
        path = tmp_path / "metrics.txt"
        path.write_text(text, encoding="utf-8")
        check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                               capture_output=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_documented_alerting_rule_is_valid(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "faults.md").read_text(encoding="utf-8")
    block = doc.split("<!-- alerting rule -->", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    path = tmp_path / "ixmeter-faults.rules.yml"
    path.write_text(block, encoding="utf-8")
    check = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ixmeter_fault_open" in block

"""Every metric and statistical method the analyzer uses: one name and one citation each.

The statistics modules take their method names from here (``Comparison.method`` is a
:class:`MethodInfo` id), the report prints names and citations from here in Chinese and
English, and docs/methodology.md carries the table :func:`markdown_table` writes (a test
checks the two are the same), so the report can only name what the code ran.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """A metric or method: stable id, names in both languages, what it is, its sources."""

    id: str
    en: str
    zh: str
    definition: str
    citation: str

    def name(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


_BLOCK_BOOTSTRAP = ("Carlstein, Ann. Stat. 14, 1986; Politis and White 2004, Patton, Politis and "
                    "White 2009; Schmeiser, Oper. Res. 30, 1982")

_ALL = (
    MethodInfo("rtt", "Round-trip delay", "往返时延",
               "RTT of each packet; statistics conditional on arrival",
               "RFC 2681 §2; RFC 6703 §5.3"),
    MethodInfo("owd", "One-way delay", "单向时延",
               "T2 - T1 and T4 - T3 with the clock-error bound E",
               "RFC 7679 §3.4, §3.7.3; RFC 8762 §4"),
    MethodInfo("loss", "Packet loss", "丢包率",
               "lost / (received + lost); lost = not received within Tmax; errors are not "
               "samples", "RFC 7680 §2.4, §2.5, §4.1; RFC 6673 §4.3"),
    MethodInfo("loss-periods", "Loss periods", "丢包周期", "count and longest period",
               "RFC 3357 §4.1"),
    MethodInfo("percentiles", "Percentiles", "百分位数",
               "smallest x with F(x) >= p (rank ceil(pN)); median the mean of the two central "
               "values; loss as +inf where labelled", "RFC 2330 §11.3; RFC 7679 §5.1, §5.2"),
    MethodInfo("pdv", "Delay variation", "时延变化", "PDV = D(i) - D(min), p99",
               "RFC 5481 §4.2, §6.5"),
    MethodInfo("sketch", "Quantile sketch", "分位数草图",
               "DDSketch, relative accuracy alpha = 0.005",
               "Masson, Rim and Lee, PVLDB 12(12), 2019"),
    MethodInfo("block-bootstrap", "Block bootstrap of a ratio or level", "块自助法区间",
               "non-overlapping block bootstrap, Politis-White block length, percentile "
               "interval with the t(k-1) finite-block correction, B >= 2000, seeded",
               _BLOCK_BOOTSTRAP),
    MethodInfo("paired-block-bootstrap", "Paired block bootstrap (scope vs reference)",
               "配对块自助法区间",
               "the block bootstrap with the same time blocks for scope and reference scope",
               _BLOCK_BOOTSTRAP),
    MethodInfo("loss-ratio-score", "Loss ratio interval", "丢包率比值区间",
               "Miettinen-Nurminen score interval of p1/p0 on counts divided by each "
               "window's dispersion phi (Pearson chi2 over blocks of time, floored at 1), "
               "referred to t(k-1) when phi is estimated",
               "Miettinen and Nurminen, Stat. Med. 4, 1985; Farrington and Manning, Stat. "
               "Med. 9, 1990; McCullagh and Nelder, GLM 2nd ed. §4.5.2, §9.2.4"),
    MethodInfo("wilson", "Loss level interval", "丢包率水平区间",
               "Wilson score interval on counts divided by the dispersion phi",
               "Wilson, JASA 22, 1927; McCullagh and Nelder, GLM 2nd ed. §4.5.2"),
    MethodInfo("zero-loss-bound", "Zero-loss upper bound", "零丢包上限",
               "95% upper bound 1 - 0.05^(1/n) when no packet was lost",
               "Clopper and Pearson, Biometrika 26, 1934 (one-sided, x = 0)"),
    MethodInfo("decision", "Decision rule", "判定规则",
               "PASS if the 95% interval lies inside the target (TOST, one-sided 0.025), FAIL "
               "if outside, INCONCLUSIVE otherwise", "Schuirmann, J. Pharmacokin. Biopharm. "
               "15, 1987"),
    MethodInfo("target-summary", "Target verdict", "目标判定",
               "a target FAILs if any group fails, PASSes if every group passes, is NOT "
               "EVALUABLE if no group could be judged, INCONCLUSIVE otherwise",
               "ixmeter policy: every group in a target's scope must meet it"),
    MethodInfo("holm", "Multiplicity", "多重比较", "Holm step-down over per-pair lists",
               "Holm, Scand. J. Stat. 6, 1979"),
    MethodInfo("clock-gates", "Clock gates", "时钟门限",
               "one-way delay <= 0 is a clock fault; E/d > 0.1 is clock-limited; S bit; "
               "clock-free RTT_net bound", "RFC 7679 §3.5, §3.7.3; RFC 4656 §4.1.2"),
)
METHODS: dict[str, MethodInfo] = {m.id: m for m in _ALL}
BOOTSTRAP, PAIRED_BOOTSTRAP = METHODS["block-bootstrap"], METHODS["paired-block-bootstrap"]
LOSS_RATIO, LOSS_LEVEL = METHODS["loss-ratio-score"], METHODS["wilson"]
ZERO_LOSS = METHODS["zero-loss-bound"]


def method(method_id: str) -> MethodInfo:
    """The registered method ``method_id``; KeyError naming it if there is none."""
    try:
        return METHODS[method_id]
    except KeyError:
        raise KeyError(f"method {method_id!r} is not registered in analyzer.methods") from None


def markdown_table() -> str:
    """The methods table of docs/methodology.md (between its ``methods`` markers)."""
    rows = ["| id | method | 方法 | definition | source |", "|---|---|---|---|---|"]
    rows += [f"| `{m.id}` | {m.en} | {m.zh} | {m.definition} | {m.citation} |" for m in _ALL]
    return "\n".join(rows) + "\n"

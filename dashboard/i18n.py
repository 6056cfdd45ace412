"""Chinese and English labels: one small table, ``t(key, lang)``; inventory names carry both."""

from __future__ import annotations

import re
from typing import Protocol

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

TABLE: dict[str, tuple[str, str]] = {
    "app_title": ("网间通信质量监测", "Inter-carrier quality monitor"),
    "overview": ("总览", "Overview"),
    "matrix": ("矩阵", "Matrix"),
    "path": ("路径", "Path"),
    "probes": ("探针", "Probes"),
    "reports": ("报告", "Reports"),
    "baseline": ("基线", "Baseline"),
    "current": ("当前", "Current"),
    "change": ("变化（当前/基线）", "Change (current/baseline)"),
    "windows": ("时间窗", "Windows"),
    "times_note": ("时间均为当地时间（{tz}）", "Times in local time ({tz})"),
    "targets": ("政策目标", "Policy targets"),
    "verdict": ("结论", "Verdict"),
    "eval_failed": ("评估失败", "Evaluation failed"),
    "PASS": ("达标", "PASS"),
    "FAIL": ("未达标", "FAIL"),
    "INCONCLUSIVE": ("尚无定论", "INCONCLUSIVE"),
    "NOT_EVALUABLE": ("无法评估", "NOT EVALUABLE"),
    "ratio": ("比值", "Ratio"),
    "value": ("数值", "Value"),
    "ci": ("95%置信区间", "95% CI"),
    "threshold": ("目标", "Target"),
    "trend": ("趋势（按日）", "Trend (daily)"),
    "groups": ("分组", "Groups"),
    "map": ("全省示意图", "Province map (schematic)"),
    "map_note": ("示意图，轮廓为近似，非权威边界",
                 "Schematic: approximate outline, not an official boundary"),
    "map_per_site": ("每条连线为一对站点间的路径", "Each link is the paths between two sites"),
    "map_per_city": ("站点对较多：每条连线汇总一对城市间的路径，同城路径不画线",
                     "Many site pairs: each link sums up the paths between two cities; paths "
                     "within a city are not drawn"),
    "data_centre": ("数据中心", "Data centre"),
    "exchange_point": ("骨干直联点", "Exchange point"),
    "computing_centre": ("算力中心", "Computing centre"),
    "hub": ("省外直联点", "Out-of-province hub"),
    "edge": ("边缘节点", "Edge"),
    "city": ("城市", "City"),
    "link_ok": ("链路达标", "Link meets target"),
    "link_warn": ("链路部分达标", "Link partly meets target"),
    "link_bad": ("链路未达标", "Link misses target"),
    "link_na": ("链路无基线", "Link, no baseline"),
    "by": ("维度", "By"),
    "by_carrier": ("运营商×运营商", "Carrier x carrier"),
    "by_city": ("城市×城市", "City x city"),
    "statistic": ("指标", "Statistic"),
    "rtt_median": ("往返时延中位数 (ms)", "Median RTT (ms)"),
    "rtt_p95": ("往返时延P95 (ms)", "RTT p95 (ms)"),
    "rtt_mean": ("往返时延均值 (ms)", "Mean RTT (ms)"),
    "loss_ratio": ("丢包率", "Loss ratio"),
    "owd_median": ("单向时延中位数 (ms)", "Median one-way delay (ms)"),
    "type_p": ("包类型 (Type-P)", "Type-P"),
    "source": ("源", "Source"),
    "destination": ("目的", "Destination"),
    "click_cell": ("点击单元格列出其路径", "Click a cell to list its paths"),
    "cell_paths": ("单元格路径", "Paths of the cell"),
    "pick_cell": ("点击上方任一单元格，列出其中的路径", "Click a cell above to list its paths"),
    "search_paths": ("搜索站点、运营商、城市或路径编号", "Search site, carrier, city or path id"),
    "row_opens_path": ("点击一行打开该路径页面；点击表头排序",
                       "Click a row to open its path page; click a header to sort"),
    "shown_of": ("显示 {shown} 条，共 {total} 条", "{shown} of {total} shown"),
    "path_id": ("路径编号", "Path id"),
    "src_site": ("源站点", "Source site"),
    "dst_site": ("目的站点", "Destination site"),
    "src_carrier": ("源运营商", "Source carrier"),
    "dst_carrier": ("目的运营商", "Destination carrier"),
    "src_city": ("源城市", "Source city"),
    "dst_city": ("目的城市", "Destination city"),
    "select_path": ("选择路径", "Select a path"),
    "no_paths": ("该选择下没有路径数据", "No path data for this selection"),
    "rtt_series": ("往返时延（中位数与P95）", "Round-trip delay (median and p95)"),
    "loss_series": ("丢包率", "Packet loss"),
    "baseline_band": ("基线范围（中位数–P95）", "Baseline band (median–p95)"),
    "target_line": ("目标线", "Target line"),
    "median": ("中位数", "Median"),
    "p95": ("P95", "p95"),
    "delay_dist": ("时延分布（前后对比）", "Delay distribution, before and after"),
    "before": ("之前（基线）", "Before (baseline)"),
    "after": ("之后（当前）", "After (current)"),
    "owd": ("单向时延（含时钟误差）", "One-way delays with clock error"),
    "forward": ("正向", "Forward"),
    "backward": ("反向", "Backward"),
    "route": ("路由（traceroute）", "Route (traceroute)"),
    "crosses_ixp": ("经过直联点", "Crosses the exchange point"),
    "not_crosses_ixp": ("未经过直联点", "Does not cross the exchange point"),
    "no_route": ("没有traceroute数据", "No traceroute data"),
    "hop": ("跳", "Hop"),
    "address": ("地址", "Address"),
    "carrier": ("运营商", "Carrier"),
    "site": ("站点", "Site"),
    "probe": ("探针", "Probe"),
    "status": ("状态", "Status"),
    "last_seen": ("最后在线", "Last seen"),
    "spool_depth": ("缓存积压", "Spool depth"),
    "results": ("结果数", "Results"),
    "coverage": ("数据覆盖率", "Data coverage"),
    "version": ("版本", "Version"),
    "ok": ("正常", "OK"),
    "late": ("延迟", "Late"),
    "silent": ("无心跳", "Silent"),
    "unknown": ("未连接", "Never seen"),
    "generate": ("生成", "Generate"),
    "format": ("格式", "Format"),
    "report_note": ("审计报告：选择时间窗，生成并下载",
                    "Auditor report: choose the windows, generate, download"),
    "report_ready": ("报告已生成", "Report generated"),
    "group": ("分组", "Group"),
    "estimate": ("估计值", "Estimate"),
    "gate": ("判定依据", "Decided by"),
    "n": ("样本量N", "N"),
    "ms": ("毫秒", "ms"),
    "time": ("时间", "Time"),
    "cdf": ("累积比例", "Cumulative share"),
    # probes page: batches a probe set aside (the collector can never accept them)
    "set_aside": ("已搁置批次（结果数）", "Set aside: batches (results)"),
    "set_aside_hint": ("采集端拒收的批次，保留在探针缓存的 rejected 表中，不再上传；请检查探针日志",
                       "Batches the collector refused, kept in the probe spool's rejected "
                       "table and no longer sent; see the probe's log"),
}

# --- the faults page (dashboard/pages/faults.py, issue 17) ---
TABLE.update({
    "faults": ("网间通信障碍", "Faults"),
    "faults_title": ("网间通信障碍登记（按日判定）", "Fault register (judged day by day)"),
    "fault_days": ("日期范围（当地时间）", "Local days"),
    "fault_rules": ("障碍判定规则", "Fault rules"),
    "fault_rule": ("规则", "Rule"),
    "article": ("条款", "Article"),
    "fault_class": ("障碍类别", "Fault class"),
    "segment": ("区段", "Segment"),
    "direction": ("互联方向", "Direction"),
    "began": ("开始日期", "Began"),
    "last_fault_day": ("最后障碍日", "Last fault day"),
    "fault_status": ("状态", "Status"),
    "fault_open": ("未消除", "Open"),
    "fault_cleared": ("已消除", "Cleared"),
    "series": ("判定序列", "Series"),
    "tier_read": ("读取层级", "Tier read"),
    "not_judged": ("无法判定的天数", "Days not judged"),
    "no_faults": ("该日期范围内没有障碍", "No faults in these days"),
    "no_fault_rules": ("清单中没有障碍判定规则", "The inventory has no fault rules"),
    "select_fault": ("选择一条障碍查看证据", "Select a fault to see its evidence"),
    "evidence": ("证据（逐日）", "Evidence, day by day"),
    "date": ("日期", "Date"),
    "tests": ("测试次数", "Tests"),
    "samples": ("样本数", "Samples"),
    "checks": ("判定", "Checks"),
    "reason": ("原因", "Reason"),
    "gaps": ("期间无数据", "Days without data meanwhile"),
    "fault_form": ("网间通信障碍申告单字段", "Fault report form fields"),
    "description": ("障碍描述", "Description"),
    "test_time": ("测试时间", "Test time"),
    "test_record": ("测试记录", "Test record"),
    "tester": ("测试人 / 联络电话", "Tester / telephone"),
    "to_fill": ("由申告方填写", "filled in by the reporting party"),
    "synthetic_banner": ("合成数据：以下障碍登记基于合成结果，并非实测",
                         "SYNTHETIC DATA: this register is computed from synthetic results, "
                         "not measurements"),
    "FAULT": ("障碍", "FAULT"),
    "CLEAR": ("正常", "CLEAR"),
})


def t(key: str, lang: str | None) -> str:
    """The label for ``key`` in ``lang`` ("zh" or "en"); the key itself if unknown."""
    pair = TABLE.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "en" else pair[0]


class _Named(Protocol):
    @property
    def zh(self) -> str: ...

    @property
    def en(self) -> str: ...


def name(names: _Named, lang: str | None) -> str:
    """An inventory :class:`~inventory.schema.Names` in the chosen language."""
    return names.en if lang == "en" else names.zh

# --- issue 20: live chart, deciding group, synthetic data, PDF, reverse reasons ---
TABLE.update({
    "live_title": ("网间时延与丢包（逐分钟）", "Inter-carrier delay and loss, minute by minute"),
    "live_rtt": ("往返时延中位数 (ms)", "Median RTT (ms)"),
    "live_loss": ("丢包率 (%)", "Loss (%)"),
    "baseline_net": ("基线网络（经省外枢纽绕转）", "Baseline network (detour via a hub)"),
    "current_net": ("当前网络（经本省直联点）", "Current network (via the province's point)"),
    "live_note": ("实时：每分钟刷新；仅网间ICMP（IPv4）路径，各分钟合并",
                  "Live: refreshed every minute; inter-carrier ICMP (IPv4) paths merged per "
                  "minute"),
    "minute_note": ("仅网间ICMP（IPv4）路径，各分钟合并",
                    "Inter-carrier ICMP (IPv4) paths merged per minute"),
    "deciding_group": ("决定结论的分组", "Deciding group"),
    "trend_of": ("趋势：决定结论的分组", "Trend of the deciding group"),
    "trend_pooled": ("趋势：全部范围合并（无可评估分组）",
                     "Trend pooled over the scope (no evaluable group)"),
    "synthetic_data": ("合成数据，并非实测", "SYNTHETIC DATA, not measurements"),
    "clock_bound": ("时钟误差界", "Clock error bound"),
    "off_scale": ("超出坐标范围", "off scale"),
    "pdf": ("PDF", "PDF"),
    "baseline_store": ("另一数据库", "from its own store"),
    "baseline_short": ("基线", "Baseline"),
    "current_short": ("当前", "Current"),
    "change_short": ("变化", "Change"),
})

# Verdict reasons (analyzer.stats.verdicts, analyzer.stats.compare, analyzer.evaluate,
# analyzer.clockdomain) clause by clause: a reason is clauses joined by "; ", a one-way reason
# "forward: ...; backward: ...". Numbers and ids are kept as they are.
_N = r"([-+0-9.e]+(?: ms)?)"
REASONS: list[tuple[str, str]] = [
    (rf"95% CI upper {_N} <= {_N}$", r"95%置信区间上限 \1 ≤ \2"),
    (rf"95% CI lower {_N} > {_N}$", r"95%置信区间下限 \1 > \2"),
    (rf"95% CI \[{_N}, {_N}\] contains {_N}$", r"95%置信区间 [\1, \2] 包含 \3"),
    (rf"95% CI upper {_N} \+- E {_N} < {_N}$", r"95%置信区间上限 \1 ± 误差界 \2 < \3"),
    (rf"95% CI upper {_N} < {_N}$", r"95%置信区间上限 \1 < \2"),
    (rf"95% CI lower {_N} \+- E {_N} >= {_N}$", r"95%置信区间下限 \1 ± 误差界 \2 ≥ \3"),
    (rf"95% CI lower {_N} >= {_N}$", r"95%置信区间下限 \1 ≥ \2"),
    (rf"95% CI \[{_N}, {_N}\] \+- E {_N} straddles {_N}$",
     r"95%置信区间 [\1, \2] ± 误差界 \3 跨越 \4"),
    (rf"95% CI \[{_N}, {_N}\] straddles {_N}$", r"95%置信区间 [\1, \2] 跨越 \3"),
    (r"clocks unsynchronised for (\d+) one-way samples$", r"\1 个单向样本的时钟未同步"),
    (rf"clock fault: one-way statistic {_N} <= 0 \(RFC 7679 §3.5\)$",
     r"时钟故障：单向统计量 \1 ≤ 0（RFC 7679 §3.5）"),
    (rf"clock-free bound: RTT_net 95% upper {_N} < {_N}, so both directions are below it$",
     r"免时钟界：RTT_net 95%上限 \1 < \2，故两个方向均低于目标"),
    (rf"clock-free bound: RTT_net 95% lower {_N} >= 2 x {_N}, so one direction is at or "
     r"above it$", r"免时钟界：RTT_net 95%下限 \1 ≥ 2 × \2，故至少一个方向达到或超过目标"),
    (rf"not significant after Holm over (\d+) \(adjusted p {_N}\)$",
     r"经 Holm 多重校正（\1 组）后不显著（校正后 p \2）"),
    (r"about (\d+) more samples per window would decide it \(power 0.8\)$",
     r"每个时间窗约再需 \1 个样本可得出结论（检验功效 0.8）"),
    (r"too few samples: (current|baseline) has (\d+), needs (\d+)$",
     r"样本不足：\1 仅 \2 个，需 \3 个"),
    (r"too few samples: (current|baseline) spans (\d+) time units, needs (\d+)$",
     r"样本不足：\1 仅覆盖 \2 个时间单元，需 \3 个"),
    (r"ratio undefined \(baseline statistic is zero\)$", r"比值无定义（基线统计量为零）"),
    (rf"zero baseline loss: the ratio is undefined; baseline loss ratio 95% upper bound {_N} "
     r"\(0 of (\d+)\)$", r"基线丢包为零，比值无定义；基线丢包率95%上界 \1（\2 个中 0 个）"),
    (r"zero baseline loss: the ratio is undefined$", r"基线丢包为零，比值无定义"),
    (rf"baseline loss ratio 95% upper bound {_N} \(0 of (\d+)\)$",
     r"基线丢包率95%上界 \1（\2 个中 0 个）"),
    (rf"clock-limited \(E/d = {_N} > 0.1\)$", r"受时钟限制（E/d = \1 > 0.1）"),
    (r"(\d+) one-way delays discarded as clock faults \(RFC 7679 §3.5\)$",
     r"\1 个单向时延因时钟故障被剔除（RFC 7679 §3.5）"),
    (r"the declared baseline gives no value for (\S+)$", r"声明的基线没有 \1 的数值"),
    (r"zero declared baseline: the ratio is undefined$", r"声明的基线为零，比值无定义"),
    (r"no data in the current window for this scope and method$",
     r"当前时间窗内该范围和方法没有数据"),
    (r"different Type-P: baseline (.+) vs current (\S+)$",
     r"包类型不同：基线 \1，当前 \2"),
    (r"no baseline data for this group$", r"该分组没有基线数据"),
    (r"no reference-scope data of the same Type-P$", r"参照范围没有同一包类型的数据"),
    (r"no baseline: give --baseline FROM/TO or name one in the inventory$",
     r"没有基线：请给出 --baseline 时间窗或在清单中指定"),
    (rf"clock domain (\S+) \(relative bound {_N} ms\): its relative error bound replaces each "
     r"end's absolute bound and S bit$", r"时钟域 \1（相对误差界 \2 毫秒）：以其相对误差界代替"
     r"两端各自的绝对误差界与同步标志"),
]
_COMPILED = [(re.compile(p), z) for p, z in REASONS]
_WORDS = {"current": "当前", "baseline": "基线"}
_SIDES = {"forward: ": "正向：", "backward: ": "反向："}


def reason(text: str, lang: str | None) -> str:
    """A verdict's reason in ``lang``: English as the analyzer wrote it, or Chinese clause by
    clause (:data:`REASONS`); a clause with no translation stays as written."""
    if lang == "en" or not text:
        return text
    return "；".join(_clause(c) for c in text.split("; "))


def _clause(clause: str) -> str:
    for side, zh in _SIDES.items():
        if clause.startswith(side):
            return zh + _clause(clause[len(side):])
    for pattern, zh in _COMPILED:
        m = pattern.match(clause)
        if m:
            out = m.expand(zh)
            for en, word in _WORDS.items():
                out = out.replace(f"：{en} ", f"：{word} ")
            return out
    return clause


def translated(text: str) -> bool:
    """Whether every clause of a reason has a Chinese form (tests)."""
    return all(_clause(c) != c for c in text.split("; ") if c)

"""Chinese and English labels: one small table, ``t(key, lang)``; inventory names carry both."""

from __future__ import annotations

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
    "times_note": ("时间均为北京时间（Asia/Shanghai）", "Times in Asia/Shanghai (UTC+8)"),
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
    "map_note": ("示意图，边界为手绘近似轮廓，非权威边界",
                 "Schematic: hand-drawn approximate outline, not an official boundary"),
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
    "click_cell": ("点击单元格查看路径", "Click a cell to open its paths"),
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

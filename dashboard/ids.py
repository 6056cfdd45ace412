"""Component ids shared by the shell and the pages (one place, so a typo is an import error)."""

from __future__ import annotations

# shell (app.py)
LANG = "lang-store"
LANG_SWITCH = "lang-switch"
NAV = "nav"
TITLE = "app-title"
WINDOW_NOTE = "window-note"
URL = "url"

# overview
OV_BODY = "ov-body"
OV_MAP = "ov-map"
OV_TARGETS = "ov-targets"
OV_TICK = "ov-tick"
OV_GEN = "ov-generation"
OV_LIVE = "ov-live"
SYNTHETIC = "synthetic-banner"

# matrix
MX_BY = "mx-by"
MX_STAT = "mx-stat"
MX_TYPEP = "mx-typep"
MX_BODY = "mx-body"
MX_BASE = "mx-baseline"
MX_CUR = "mx-current"
MX_CHANGE = "mx-change"
MX_NAV = "mx-nav"
MX_CELL = "mx-cell"
MX_DRILL = "mx-drill"
MX_DRILL_HEAD = "mx-drill-head"
MX_SEARCH = "mx-search"
MX_PATHS = "mx-paths"

# path
PA_SELECT = "pa-select"
PA_BODY = "pa-body"
PA_RTT = "pa-rtt"
PA_LOSS = "pa-loss"
PA_CDF = "pa-cdf"
PA_OWD = "pa-owd"
PA_ROUTE = "pa-route"
PA_HEADER = "pa-header"

# probes
PR_BODY = "pr-body"
PR_TABLE = "pr-table"
PR_COVERAGE = "pr-coverage"

# reports
RP_BASE = "rp-baseline"
RP_CUR = "rp-current"
RP_GENERATE = "rp-generate"
RP_FORMAT = "rp-format"
RP_DOWNLOAD = "rp-download"
RP_STATUS = "rp-status"
RP_TABLE = "rp-table"
RP_BODY = "rp-body"

# faults
FA_TITLE = "fa-title"
FA_DAYS = "fa-days"
FA_DAYS_LABEL = "fa-days-label"
FA_BODY = "fa-body"
FA_RULES = "fa-rules"
FA_TABLE = "fa-table"
FA_SELECT = "fa-select"
FA_EVIDENCE = "fa-evidence"

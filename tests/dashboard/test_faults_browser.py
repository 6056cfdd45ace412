"""The Faults page in headless Chromium: reached from the navigation bar, the rules and their
articles listed, no fault where the store has no data on the segments."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.context import Context
from tests.dashboard.test_browser import WAIT, _no_outside_requests, _start

pytestmark = pytest.mark.browser


def test_faults_page(dash_duo: Any, ctx: Context) -> None:
    _start(dash_duo, ctx)
    dash_duo.wait_for_element("#nav-faults", timeout=WAIT).click()
    dash_duo.wait_for_contains_text("#fa-rules", "class-a-2", timeout=WAIT)
    dash_duo.wait_for_contains_text("#fa-rules", "第五条（一）2", timeout=WAIT)
    dash_duo.wait_for_contains_text("#fa-body", "该日期范围内没有障碍", timeout=WAIT)
    _no_outside_requests(dash_duo)
    assert [e for e in dash_duo.get_logs() if e.get("level") == "SEVERE"] == []

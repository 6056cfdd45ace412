"""Screenshots of a running dashboard in headless Chromium, for docs/img (not a test).

    python -m tests.dashboard.screenshots http://127.0.0.1:8050 docs/img [PAGE ...]

PAGE is ``name=path`` (e.g. ``overview=/?lang=en``); the default set is the overview in both
languages, the matrix, a path and the reports page. Each page gets a few seconds to draw.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

DEFAULT = ("overview=/?lang=en", "overview-zh=/?lang=zh", "matrix=/matrix?lang=en",
           "path=/path?by=carrier&src=CT&dst=CM&lang=en", "reports=/reports?lang=en")


def shoot(base: str, out: Path, pages: list[str], width: int = 1600, height: int = 1500,
          settle_s: float = 30.0) -> list[Path]:
    from selenium import webdriver

    from tests.dashboard.conftest import pytest_setup_options

    (options,) = pytest_setup_options()
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=options)
    written = []
    try:
        for page in pages:
            name, _, path = page.partition("=")
            driver.get(base.rstrip("/") + path)
            time.sleep(settle_s)
            full = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(width, max(height, int(full) + 40))
            time.sleep(1.0)
            target = out / f"{name}.png"
            driver.save_screenshot(str(target))
            written.append(target)
            driver.set_window_size(width, height)
    finally:
        driver.quit()
    return written


if __name__ == "__main__":
    url, folder, *chosen = sys.argv[1:]
    for p in shoot(url, Path(folder), chosen or list(DEFAULT)):
        print(p)

"""Look at Label Studio the way a user does: headless Chromium through Selenium.

Used by the tests (skipped where Chromium, chromedriver or selenium is missing) and as a
script that refreshes the screenshots in docs/screenshots:

    PYTHONPATH=. .venv/bin/python tests/ls_browser.py LS_URL PROJECT_ID OUT.png [TASK_ID OUT2.png]
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from labelstudio_server import LS_PASSWORD, LS_USER

__all__ = ["browser", "browser_available", "data_manager_scores", "labeling_screenshot", "login", "show_columns"]

SCORE_COLUMNS = ("tasks:predictions_score", "tasks:predictions_model_versions")


def show_columns(ls, project: int, columns=SCORE_COLUMNS) -> bool:
    """Unhide data-manager columns in the project's views, as the Columns menu does
    (Label Studio hides Prediction score by default). `ls` is an authenticated httpx
    client. The data manager makes its views on first load: False if there are none yet."""
    views = ls.get("/api/dm/views", params={"project": project}).json()
    for view in views:
        data = dict(view["data"])
        hidden = dict(data.get("hiddenColumns") or {})
        hidden["explore"] = [c for c in hidden.get("explore", []) if c not in columns]
        data["hiddenColumns"] = hidden
        ls.patch(f"/api/dm/views/{view['id']}", json={"project": project, "data": data}).raise_for_status()
    return bool(views)


def _binaries() -> tuple[str | None, str | None]:
    chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    return chrome, shutil.which("chromedriver")


def browser_available() -> str | None:
    """None when a browser check can run here, else why not."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    chrome, driver = _binaries()
    if not chrome or not driver:
        return "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    return None


@contextlib.contextmanager
def browser(width: int = 1400, height: int = 1100) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chrome, driver_path = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--lang=en-US"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, timeout: float = 90.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.3).until(condition)


def login(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/user/login/")
    _wait(driver, lambda d: d.find_elements(By.NAME, "email"))
    driver.find_element(By.NAME, "email").send_keys(LS_USER)
    driver.find_element(By.NAME, "password").send_keys(LS_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
    _wait(driver, lambda d: "/user/login" not in d.current_url)


def data_manager_scores(driver, api, url: str, project: int, screenshot: Path | None = None) -> list[str]:
    """Open the project's data manager, show its Prediction score column and read it (cell texts)."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/projects/{project}/data")
    _wait(driver, lambda d: show_columns(api, project))
    driver.refresh()

    def column_cells(d):
        headers = d.find_elements(By.CSS_SELECTOR, ".lsf-table-head .lsf-table__cell")
        titles = [(h.get_attribute("textContent") or "").strip() for h in headers]
        if "Prediction score" not in titles:
            return None
        column = titles.index("Prediction score")
        rows = d.find_elements(By.CSS_SELECTOR, ".lsf-table-row")
        if not rows:
            return None
        values = []
        for row in rows:
            cells = row.find_elements(By.CSS_SELECTOR, ".lsf-table__cell")
            values.append((cells[column].get_attribute("textContent") or "").strip() if column < len(cells) else "")
        return values if all(values) else None

    values = _wait(driver, column_cells)
    time.sleep(0.5)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
    return values


def labeling_screenshot(driver, url: str, project: int, task: int, screenshot: Path,
                        scroll_to: str | None = None) -> str:
    """Open one task in the labeling view; returns the page text (what the annotator reads).
    `scroll_to`: a text to bring into view before the screenshot (e.g. one score line)."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/projects/{project}/data?task={task}")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[class*='choice'], .ant-checkbox, .lsf-choice"))
    time.sleep(2.0)
    if scroll_to:
        found = _wait(driver, lambda d: d.find_elements(By.XPATH, f"//*[normalize-space(text())='{scroll_to}']"))
        driver.execute_script("arguments[0].scrollIntoView({block: 'end'})", found[0])
        time.sleep(0.5)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(screenshot))
    return driver.find_element(By.TAG_NAME, "body").text


if __name__ == "__main__":
    ls_url, project_id, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    import httpx

    from labelstudio_server import LS_TOKEN

    with httpx.Client(base_url=ls_url, headers={"Authorization": f"Token {LS_TOKEN}"}) as api, browser() as chrome:
        login(chrome, ls_url)
        print(data_manager_scores(chrome, api, ls_url, project_id, out))
        if len(sys.argv) > 5:
            labeling_screenshot(chrome, ls_url, project_id, int(sys.argv[4]), Path(sys.argv[5]))

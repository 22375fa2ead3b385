"""Check a Snakemake 9 HTML report in headless Chromium, navigating it as a person would.

The Snakemake 9 report is a single-page React app. Its left sidebar (the outer ``<nav>``)
holds breadcrumbs (an inner ``<nav><ol>``, the first link being *home*) and a menu ``<ul>``:
headings ``GENERAL`` / ``RESULTS`` are ``<li>`` without a link, items are ``<li><a><span>``.
The items after ``Workflow``, ``Statistics`` and ``About`` are the result categories (a single
category is shown as one item ``Results``). Clicking a category shows either its subcategories
(again ``<li><a><span>`` items) or, when it has only one, the results table directly: a
``<table>`` whose rows hold the label values (or the file path when the outputs have no labels)
and, in the last cell, an *eye* button and an *info* button. The eye button of an image sets
the main content area to an ``<img>`` (data URI); of a PDF/HTML file to an ``<iframe>``; of any
other file (CSV, ...) it is a download link ``<a download href="data:...">``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "BrowserUnavailableError",
    "ReportEntry",
    "browser_available",
    "check_report",
    "list_report",
]

CHROMIUM = Path(os.environ.get("IMAN_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("IMAN_CHROMEDRIVER", "/usr/bin/chromedriver"))
_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_GENERAL_ITEMS = frozenset({"Workflow", "Statistics", "About"})
_SIDEBAR = "#app nav.h-screen"
_MENU_ITEMS = f"{_SIDEBAR} > div > div > ul > li"
_HOME = f"{_SIDEBAR} nav ol > li:first-child > a"
_TABLE_ROWS = f"{_SIDEBAR} table tbody tr"


class BrowserUnavailableError(RuntimeError):
    """Chromium, chromedriver or selenium is missing (run ``scripts/install-browser.sh``)."""


@dataclass
class ReportEntry:
    """One row of a results table in the report, and what its view button gave."""

    category: str
    subcategory: str | None
    cells: list[str]
    kind: str = "unknown"
    ok: bool = False
    detail: str = ""
    names: set[str] = field(default_factory=set)


def browser_available() -> str | None:
    """Return None when the browser stack is usable, else the reason it is not."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return "missing " + ", ".join(missing) + " (run scripts/install-browser.sh)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python package selenium is not installed"
    return None


def _start_driver(profile: Path, window: tuple[int, int]) -> Any:
    """Start headless Chromium via the system chromedriver (no driver download)."""
    reason = browser_available()
    if reason is not None:
        raise BrowserUnavailableError(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*_CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--window-size={window[0]},{window[1]}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))


def _wait(driver: Any, cond: Callable[[Any], Any], timeout: float, what: str) -> Any:
    """Wait until ``cond(driver)`` is truthy; raise TimeoutError naming ``what``."""
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(cond)
    except Exception as exc:
        raise TimeoutError(f"timed out waiting for {what}") from exc


def _menu(driver: Any) -> list[tuple[str, Any]]:
    """(text, link) for each clickable menu item currently in the sidebar."""
    from selenium.webdriver.common.by import By

    items = []
    for li in driver.find_elements(By.CSS_SELECTOR, _MENU_ITEMS):
        links = li.find_elements(By.CSS_SELECTOR, ":scope > a")
        if links:
            items.append((li.text.strip(), links[0]))
    return items


def _go_home(driver: Any, timeout: float) -> None:
    """Click the home breadcrumb and wait for the main menu."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, _HOME).click()
    _wait(driver, lambda d: any(t == "Workflow" for t, _ in _menu(d)), timeout, "the main menu")


def _click_item(driver: Any, text: str, timeout: float) -> None:
    """Click the sidebar menu item labelled ``text`` and wait for the sidebar to change."""
    for label, link in _menu(driver):
        if label == text:
            link.click()
            _wait(driver, lambda d: not any(t == text for t, _ in _menu(d)) or _rows(d),
                  timeout, f"the sidebar after clicking {text!r}")
            return
    raise LookupError(f"menu item {text!r} not found")


def _rows(driver: Any) -> list[Any]:
    """Rows of the results table shown in the sidebar (empty when none is shown)."""
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, _TABLE_ROWS)


def _content_media(driver: Any) -> list[dict[str, Any]]:
    """Images and iframes in the main content area (outside the sidebar)."""
    return driver.execute_script(
        """
        const out = [];
        for (const el of document.querySelectorAll('#app img, #app iframe')) {
            if (el.closest('nav')) continue;
            out.push({tag: el.tagName.toLowerCase(), src: el.getAttribute('src') || '',
                      complete: el.tagName === 'IMG' ? el.complete : true,
                      width: el.tagName === 'IMG' ? el.naturalWidth : 0});
        }
        return out;
        """
    )


def _view(driver: Any, row: Any, timeout: float) -> tuple[str, bool, str]:
    """Press the row's view button; return (kind, ok, detail)."""
    from selenium.webdriver.common.by import By

    buttons = row.find_elements(By.CSS_SELECTOR, "td:last-child a")
    if not buttons:
        return "none", False, "no view button"
    button = buttons[0]
    if button.get_dom_attribute("download") is not None:
        href = button.get_dom_attribute("href") or ""
        payload = href.split(",", 1)[1] if "," in href else ""
        ok = href.startswith("data:") and len(payload) > 0
        return "download", ok, "" if ok else "download link has no data"
    before = [(m["tag"], m["src"]) for m in _content_media(driver)]
    button.click()
    try:
        media = _wait(
            driver,
            lambda d: [m for m in _content_media(d) if (m["tag"], m["src"]) not in before],
            timeout, "the viewed result")
    except TimeoutError as exc:
        media = _content_media(driver)
        if not media:
            return "none", False, str(exc)
    item = media[0]
    if item["tag"] == "iframe":
        ok = item["src"].startswith("data:") and len(item["src"].split(",", 1)[-1]) > 0
        return "iframe", ok, "" if ok else "iframe has no data"
    try:
        item = _wait(
            driver,
            lambda d: next((m for m in _content_media(d) if m["tag"] == "img" and m["complete"]),
                           None),
            timeout, "the image to load")
    except TimeoutError as exc:
        return "img", False, str(exc)
    ok = item["width"] > 0
    return "img", ok, "" if ok else "image did not load (naturalWidth == 0)"


def _names(cells: list[str]) -> set[str]:
    """Names under which a row counts as listed: each cell, its basename and stem."""
    names: set[str] = set()
    for cell in cells:
        text = cell.strip()
        if not text:
            continue
        base = text.rsplit("/", 1)[-1]
        names.update({text.casefold(), base.casefold(), base.rsplit(".", 1)[0].casefold()})
    names.add(" ".join(c.strip() for c in cells if c.strip()).casefold())
    return names


def _read_table(driver: Any, category: str, subcategory: str | None,
                timeout: float) -> list[ReportEntry]:
    """Read every row of the shown results table and view each result."""
    from selenium.webdriver.common.by import By

    entries = []
    for i in range(len(_rows(driver))):
        row = _rows(driver)[i]
        cells = [td.text.strip() for td in row.find_elements(By.CSS_SELECTOR, "td")][:-1]
        kind, ok, detail = _view(driver, row, timeout)
        entries.append(ReportEntry(category, subcategory, cells, kind, ok, detail, _names(cells)))
    return entries


def _open_category(driver: Any, category: str, timeout: float) -> None:
    """From anywhere, open ``category`` via the home menu."""
    _go_home(driver, timeout)
    _click_item(driver, category, timeout)


def _walk(driver: Any, timeout: float) -> list[ReportEntry]:
    """Visit every category and subcategory and collect its results."""
    categories = [t for t, _ in _menu(driver) if t not in _GENERAL_ITEMS]
    entries: list[ReportEntry] = []
    for category in categories:
        _open_category(driver, category, timeout)
        if _rows(driver):
            entries += _read_table(driver, category, None, timeout)
            continue
        for sub in [t for t, _ in _menu(driver)]:
            _open_category(driver, category, timeout)
            _click_item(driver, sub, timeout)
            _wait(driver, _rows, timeout, f"the results of {category}/{sub}")
            entries += _read_table(driver, category, sub, timeout)
    return entries


def _load(driver: Any, html: Path, timeout: float) -> None:
    """Open the report and wait until the app has rendered its menu."""
    driver.get(html.resolve().as_uri())
    _wait(driver, lambda d: any(t == "Workflow" for t, _ in _menu(d)), timeout,
          "the report app to render its menu")


def _show_first_image(driver: Any, entries: list[ReportEntry], timeout: float) -> None:
    """Navigate to the first image result so the screenshot shows a listing and a figure."""
    from selenium.webdriver.common.by import By

    target = next((e for e in entries if e.kind == "img" and e.ok), None)
    if target is None:
        return
    _open_category(driver, target.category, timeout)
    if target.subcategory is not None:
        _click_item(driver, target.subcategory, timeout)
        _wait(driver, _rows, timeout, "the results table")
    for row in _rows(driver):
        cells = [td.text.strip() for td in row.find_elements(By.CSS_SELECTOR, "td")][:-1]
        if cells == target.cells:
            _view(driver, row, timeout)
            return


def list_report(html: Path, *, timeout: float = 30.0,
                window: tuple[int, int] = (1600, 1000)) -> list[ReportEntry]:
    """Return every result listed in the report (opening each one), without judging."""
    with tempfile.TemporaryDirectory(prefix="iman-chromium-") as profile:
        driver = _start_driver(Path(profile), window)
        try:
            _load(driver, Path(html), timeout)
            return _walk(driver, timeout)
        finally:
            driver.quit()


def check_report(html: Path, screenshot: Path, expect: list[str], *, timeout: float = 30.0,
                 window: tuple[int, int] = (1600, 1000)) -> list[str]:
    """Open the report, check that every name in ``expect`` is listed and every result opens.

    A name matches a listed row when it equals (case-insensitively) one of the row's label
    values, the shown path, its basename or its stem, or all label values joined by spaces.
    Images must load (``naturalWidth > 0``); PDF/HTML iframes and download links must carry
    data. Console errors of level SEVERE are problems too. A screenshot showing the first
    image result is saved to ``screenshot``. Returns the problems (empty = OK); raises
    :class:`BrowserUnavailableError` when the browser stack is missing.
    """
    html, screenshot = Path(html), Path(screenshot)
    if not html.is_file():
        return [f"report not found: {html}"]
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="iman-chromium-") as profile:
        driver = _start_driver(Path(profile), window)
        try:
            try:
                _load(driver, html, timeout)
                entries = _walk(driver, timeout)
                _show_first_image(driver, entries, timeout)
            except (TimeoutError, LookupError) as exc:
                problems.append(f"navigation failed: {exc}")
                entries = []
            time.sleep(0.3)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            if not driver.save_screenshot(str(screenshot)):
                problems.append(f"could not save screenshot {screenshot}")
            logs = driver.get_log("browser")
        finally:
            driver.quit()
    if not entries and not problems:
        problems.append("the report lists no results")
    for entry in entries:
        if not entry.ok:
            where = "/".join(x for x in (entry.category, entry.subcategory) if x)
            problems.append(f"{where}: {' '.join(entry.cells)}: {entry.detail}")
    listed = set().union(*(e.names for e in entries)) if entries else set()
    for name in expect:
        if name.strip().casefold() not in listed:
            problems.append(f"expected result not listed in the report: {name}")
    problems += [f"browser console error: {log['message']}" for log in logs
                 if log.get("level") == "SEVERE"]
    if not screenshot.is_file() or screenshot.stat().st_size == 0:
        problems.append(f"screenshot is empty or missing: {screenshot}")
    return problems


"""The report in a real browser: Debian's headless Chromium driven by Selenium through file:// URLs.

Skips (with the reason) where Chromium, its driver or selenium is missing; `.ci/run` installs them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conformance.results import storage

pytestmark = pytest.mark.integration  # starts a browser and reads the real run (fixture tiny_run)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver",
                                reason="selenium is not installed (pip install -e '.[harness]')")
if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
    pytest.skip("headless Chromium is not installed: apt-get install -y chromium chromium-driver",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


def errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


def visible_rows(browser) -> int:
    return sum(row.is_displayed() for row in browser.find_elements(By.CSS_SELECTOR, "#items tbody tr"))


def test_index_lists_every_item_and_filters_hide_rows(browser, tiny_run):
    items = storage.read_json(tiny_run / "summary.json")["items"]
    browser.get((tiny_run / "index.html").as_uri())
    assert visible_rows(browser) == len(items) == 3
    Select(browser.find_element(By.ID, "f-outcome")).select_by_visible_text("skipped")
    assert visible_rows(browser) == sum(e["outcome"] == "skipped" for e in items) == 1
    assert browser.find_element(By.ID, "shown").text == "1 of 3 shown"
    Select(browser.find_element(By.ID, "f-outcome")).select_by_visible_text("all")
    browser.find_element(By.ID, "f-text").send_keys("tiny_eps")
    assert visible_rows(browser) == 1
    browser.find_element(By.ID, "f-text").clear()
    browser.execute_script("document.getElementById('f-text').dispatchEvent(new Event('input'))")
    assert visible_rows(browser) == 3
    header = browser.find_elements(By.CSS_SELECTOR, "#items thead th")[6]  # first divergent step
    header.click()
    first = browser.find_element(By.CSS_SELECTOR, "#items tbody tr td a").text
    assert first == "tiny_eps"  # the only item with a first divergent step sorts first, ascending
    assert errors(browser) == []


def test_item_page_shows_plots(browser, tiny_run):
    browser.get((tiny_run / "items" / "tiny_eps__cpu-float32.html").as_uri())
    plots = browser.find_elements(By.CSS_SELECTOR, ".plot svg")
    assert len(plots) == 1
    size = plots[0].size
    assert size["width"] > 300 and size["height"] > 200
    assert len(browser.find_elements(By.CSS_SELECTOR, ".plot svg path")) > 20  # lines and axes were drawn
    link = browser.find_element(By.LINK_TEXT, "← all items of run tiny")
    assert link.get_attribute("href").endswith("/index.html")
    assert errors(browser) == []


def test_index_fits_a_1280_pixel_window(browser, tmp_path):
    """A run with a long case id that has no hyphen to break at, and a long message: the item table still
    fits (with columns that cannot wrap, this one is 1475 px wide)."""
    from conformance.report.run_report import render_index
    from tests.report.docs_summary import item, summary

    data = summary()
    data["items"].append(item("cases/torch_variants.yaml::torch_implementation_switches.torch=foreach_False"
                              "_and_a_much_longer_matrix_suffix[cpu-float32]", expect="conform", observed="diverge",
                              outcome="failed", message="expected conform, observed diverge " * 6))
    (tmp_path / "index.html").write_text(render_index(data["run"], data["items"]), encoding="utf-8")
    browser.set_window_size(1280, 900)
    try:
        browser.get((tmp_path / "index.html").as_uri())
        widths = browser.execute_script(
            "var t = document.getElementById('items').getBoundingClientRect();"
            "return [document.documentElement.clientWidth, document.documentElement.scrollWidth, t.right];")
    finally:
        browser.set_window_size(1400, 1000)
    client, scroll, table_right = widths
    assert scroll <= client and table_right <= client, widths

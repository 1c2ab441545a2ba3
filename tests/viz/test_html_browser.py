"""The HTML report in a real browser: Debian's headless Chromium driven by selenium.

Run locally: ``apt-get install chromium chromium-driver`` (once), then
``.venv/bin/python -m pytest tests/test_html_browser.py``. Without the browser these tests are
skipped with that hint, unless ``BESTIE_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then they
fail. Screenshots go to ``$BESTIE_SCREENSHOTS`` (default: the test's temporary folder).
``BESTIE_CHROMIUM`` / ``BESTIE_CHROMEDRIVER`` name another browser and driver.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bestie_labels.viz.html.labels_summary import write_labels_report
from html_helpers import WORST, tiny_run

pytestmark = pytest.mark.browser

# Debian's paths; BESTIE_CHROMIUM / BESTIE_CHROMEDRIVER point elsewhere (another system's browser).
CHROMIUM = os.environ.get("BESTIE_CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("BESTIE_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, DRIVER) if not os.path.exists(p)]
    webdriver = None
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if missing:
        msg = ("headless Chromium is not installed (missing " + ", ".join(missing) + "): "
               "apt-get install chromium chromium-driver")
        if os.environ.get("BESTIE_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(demo_root, tmp_path_factory):
    ds, work = tiny_run(demo_root, tmp_path_factory.mktemp("html_browser"))
    r = write_labels_report(ds, work / "pseudo.h5", work / "html", wsss=work / "wsss.h5", cues=work / "cues.h5",
                            progress=False)
    return ds, Path(r["index"]).parent


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = Path(os.environ.get("BESTIE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _open(browser, path: Path, hash_: str = ""):
    browser.get(path.as_uri() + (("#" + hash_) if hash_ else ""))
    return browser.get_log("browser")


def _errors(log):
    return [e for e in log if e.get("level") == "SEVERE"]


def test_summary_loads_without_console_errors(browser, site, shots):
    from selenium.webdriver.common.by import By

    ds, root = site
    log = _open(browser, root / "index.html")
    browser.save_screenshot(str(shots / "summary.png"))
    assert _errors(log) == []
    rows = browser.find_elements(By.CSS_SELECTOR, "#summary-tables tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "td").text for r in rows] == [*ds.class_names, "total"]
    plots = browser.find_elements(By.CSS_SELECTOR, "#plots img")
    assert len(plots) == 2 and all(browser.execute_script("return arguments[0].naturalWidth", p) > 0 for p in plots)


def test_gallery_shows_every_image(browser, site, shots):
    from selenium.webdriver.common.by import By

    ds, root = site
    log = _open(browser, root / "gallery.html")
    browser.save_screenshot(str(shots / "gallery.png"))
    assert _errors(log) == []
    assert browser.find_element(By.ID, "count").text == f"{len(ds)} images"
    cards = browser.find_elements(By.CSS_SELECTOR, "#grid .card")
    assert sorted(c.get_attribute("data-id") for c in cards) == sorted(ds.image_ids)
    # every thumbnail loaded (a broken path would give naturalWidth 0)
    assert all(browser.execute_script("return arguments[0].naturalWidth", i) > 0
               for i in browser.find_elements(By.CSS_SELECTOR, "#grid img"))


def test_sort_by_recall_puts_the_worst_image_first(browser, site, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    ds, root = site
    _open(browser, root / "gallery.html")  # the default order: worst first
    assert browser.find_element(By.CSS_SELECTOR, "#grid .card").get_attribute("data-id") == WORST
    _open(browser, root / "gallery.html", "sort=id&dir=asc")
    first = browser.find_element(By.CSS_SELECTOR, "#grid .card").get_attribute("data-id")
    assert first == min(ds.image_ids)
    Select(browser.find_element(By.ID, "sort")).select_by_value("recall")
    Select(browser.find_element(By.ID, "dir")).select_by_value("asc")
    cards = browser.find_elements(By.CSS_SELECTOR, "#grid .card")
    assert cards[0].get_attribute("data-id") == WORST
    assert "recall % 0" in cards[0].text
    # filtering by a class keeps only images holding it
    Select(browser.find_element(By.ID, "cls")).select_by_index(1)  # the first class
    with_class = [r.image_id for r in ds.records if ds.load_gt(r).classes.tolist().count(0) or r.labels[0]]
    shown = [c.get_attribute("data-id") for c in browser.find_elements(By.CSS_SELECTOR, "#grid .card")]
    assert sorted(shown) == sorted(with_class) and len(shown) < len(ds)
    browser.save_screenshot(str(shots / "gallery_filtered.png"))


def test_image_page_shows_four_panels_and_the_legend(browser, site, shots):
    from selenium.webdriver.common.by import By

    ds, root = site
    log = _open(browser, root / "pages" / f"{WORST}.html", "sort=recall&dir=asc")
    browser.save_screenshot(str(shots / "image_page.png"))
    assert _errors(log) == []
    panels = browser.find_elements(By.CSS_SELECTOR, ".panels figure.panel")
    assert [p.find_element(By.TAG_NAME, "figcaption").text.split(" (")[0] for p in panels] == \
        ["image + cues", "WSSS class mask", "pseudo instances", "GT"]
    wsss_legend = [li.text for li in panels[1].find_elements(By.CSS_SELECTOR, "ul.legend li")]
    rec = ds.record(WORST)
    present = [ds.class_names[k] for k in set(ds.load_gt(rec).classes.tolist())]
    assert "background" in wsss_legend and all(name in wsss_legend for name in present)
    # GT panel: every GT instance is missed (the pseudo instances were removed)
    assert f"missed {len(ds.load_gt(rec).classes)}" in panels[3].find_element(By.CSS_SELECTOR, "ul.legend").text
    # worst first: no previous image, the next link goes to the second worst in that order
    assert browser.find_element(By.ID, "prev").get_attribute("href") is None
    assert browser.find_element(By.ID, "next").get_attribute("href").split("/")[-1].startswith("2000_")
    # a layer toggle hides that layer in its panel and nothing else
    layer = browser.find_element(By.CSS_SELECTOR, "img.layer[data-layer='wsss']")
    assert layer.is_displayed()
    browser.find_element(By.CSS_SELECTOR, "#layers input[data-layer='wsss']").click()
    assert not layer.is_displayed()
    assert browser.find_element(By.CSS_SELECTOR, "img.layer[data-layer='gt']").is_displayed()


def test_prev_next_follow_the_current_order(browser, site):
    from selenium.webdriver.common.by import By

    ds, root = site
    ids = sorted(ds.image_ids)
    _open(browser, root / "pages" / f"{ids[3]}.html", "sort=id&dir=asc")
    assert browser.find_element(By.ID, "prev").get_attribute("href").split("/")[-1].split("#")[0] == f"{ids[2]}.html"
    browser.find_element(By.ID, "next").click()
    assert browser.find_element(By.ID, "image-id").text == ids[4]
    assert browser.find_element(By.ID, "position").text == f"5 of {len(ids)}"

"""The circuit page in a real browser (headless Chromium): it draws every node and edge,
a click shows the node's top contexts, nothing errs on the console, and it is not blank.

Needs Debian's chromium and chromium-driver (.ci/run installs them), selenium and
Pillow (the `test` extra); without a Chromium the test is skipped, saying so.
"""

import io
import shutil

import numpy as np
import pytest

import view_setup

_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
  if not (_CHROMIUM and _DRIVER):
    pytest.skip("no chromium/chromedriver installed: apt-get install chromium "
                "chromium-driver (.ci/run does)")
  webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -e '.[test]'")
  options = webdriver.ChromeOptions()
  options.binary_location = _CHROMIUM
  for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1500,1000"):
    options.add_argument(arg)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  driver = webdriver.Chrome(options=options,
                            service=webdriver.ChromeService(executable_path=_DRIVER))
  yield driver
  driver.quit()


@pytest.fixture(scope="module")
def viewed(tmp_path_factory):
  return view_setup.pruned_and_viewed(tmp_path_factory.mktemp("viewed"))


def test_the_page_in_chromium(viewed, browser):
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  _, c, _, written = viewed
  browser.get("file://" + written["pages"][0])
  assert browser.execute_script(
      "return document.querySelectorAll('[data-node]').length") == len(c.nodes)
  assert browser.execute_script(
      "return document.querySelectorAll('[data-edge]').length") == len(c.edges)

  node = browser.find_element(By.CSS_SELECTOR, '[data-node="0.attn.v.0"]')
  node.click()
  panel = browser.find_element(By.ID, "panel")
  assert "0.attn.v.0" in panel.text
  contexts = panel.find_elements(By.CSS_SELECTOR, ".contexts .ctx")
  assert len(contexts) >= 8
  assert all(ctx.find_elements(By.TAG_NAME, "mark") for ctx in contexts)
  assert "with just this node ablated" in panel.text

  errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
  assert not errors, errors

  image = pytest.importorskip("PIL.Image", reason="pip install -e '.[test]'")
  with image.open(io.BytesIO(browser.get_screenshot_as_png())) as shot:
    pixels = np.asarray(shot.convert("RGB"), np.float64)
  assert pixels.shape[0] > 300 and pixels.shape[1] > 300
  assert pixels.std() > 10  # not one flat colour

  browser.get("file://" + written["index"])
  assert browser.find_element(By.LINK_TEXT, "planted")
  assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]

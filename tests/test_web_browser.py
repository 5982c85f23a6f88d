"""The driving page in real headless Chromium, against a real Vehicle running the web controller."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from autodrive import channels
from autodrive.parts.web import WebController
from autodrive.vehicle import Vehicle

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TUB_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tubs" / "donkeycar-track-2020" / "images"
TOKEN = "browser-test-token"
WAIT_S = 15.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's /usr/bin/chromium is not installed"),
]


class TubCamera:
    """Camera part that plays the recorded tub's frames, one per call."""

    def __init__(self, count: int = 20):
        paths = sorted(TUB_IMAGES.glob("*_cam_image_array_.jpg"), key=lambda path: int(path.name.split("_")[0]))[:count]
        self.frames = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in paths]
        if not self.frames:
            self.frames = [np.full((120, 160, 3), 90, np.uint8)]
        self.number = 0

    def run(self):
        self.number += 1
        return self.frames[self.number % len(self.frames)], self.number


def wait_for(condition, description: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {description}")


def run_car(has_pilot: bool):
    web = WebController(host="127.0.0.1", port=0, token=TOKEN, watchdog_s=0.5, has_pilot=has_pilot)
    vehicle = Vehicle()
    vehicle.add(TubCamera(), outputs=[channels.CAMERA_IMAGE, channels.CAMERA_FRAME])
    vehicle.add(web, inputs=WebController.INPUTS, outputs=WebController.OUTPUTS, threaded=True)
    runner = threading.Thread(target=vehicle.start, kwargs={"rate_hz": 20}, daemon=True)
    runner.start()
    assert web.wait_ready()
    yield web, vehicle
    vehicle.stop()
    runner.join(WAIT_S)


@pytest.fixture
def car():
    yield from run_car(has_pilot=True)


@pytest.fixture
def car_without_pilot():
    yield from run_car(has_pilot=False)


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def test_page_drives_stops_and_latches(car, browser):
    web, vehicle = car
    mem = vehicle.mem
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    page_errors = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))

    page.goto(f"http://127.0.0.1:{web.port}/?token={TOKEN}")
    page.wait_for_function("document.getElementById('role').textContent === 'driving'", timeout=WAIT_S * 1000)
    assert "token" not in page.url  # the page drops the token from the address bar

    page.keyboard.down("ArrowUp")
    page.keyboard.down("ArrowLeft")
    wait_for(lambda: mem[channels.USER_THROTTLE] == 0.5 and mem[channels.USER_ANGLE] == -1.0, "keys to reach the car")
    page.keyboard.up("ArrowLeft")
    page.keyboard.up("ArrowUp")
    wait_for(lambda: mem[channels.USER_THROTTLE] == 0.0 and mem[channels.USER_ANGLE] == 0.0, "released keys to centre")

    page.locator("#estop").click()
    wait_for(lambda: mem[channels.USER_ESTOP] is True, "emergency stop to reach the car")
    page.keyboard.down("ArrowUp")
    time.sleep(0.3)  # a few send intervals: throttle must stay zero while latched
    assert mem[channels.USER_THROTTLE] == 0.0
    assert page.locator("#estop").get_attribute("aria-pressed") == "true"
    assert "latched" in page.locator("#estop").get_attribute("class")
    page.keyboard.up("ArrowUp")

    page.locator("#estop").click()
    wait_for(lambda: mem[channels.USER_ESTOP] is False, "emergency stop release")
    page.keyboard.down("KeyW")
    wait_for(lambda: mem[channels.USER_THROTTLE] == 0.5, "throttle after release")

    page.wait_for_function(
        "document.getElementById('video').naturalWidth === 160", timeout=WAIT_S * 1000
    )
    assert page.locator("#loop-hz").text_content() not in ("", "—")

    page.close()
    wait_for(lambda: mem[channels.USER_THROTTLE] == 0.0, "throttle to stop when the page closes")
    context.close()
    assert page_errors == []


def test_space_bar_latches_estop(car, browser):
    web, vehicle = car
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{web.port}/?token={TOKEN}")
    page.wait_for_function("document.getElementById('role').textContent === 'driving'", timeout=WAIT_S * 1000)

    page.keyboard.press("Space")

    wait_for(lambda: vehicle.mem[channels.USER_ESTOP] is True, "space bar emergency stop")
    page.keyboard.press("Space")  # space only engages; releasing needs the button
    time.sleep(0.3)
    assert vehicle.mem[channels.USER_ESTOP] is True
    page.close()


def test_page_mode_record_and_slider(car, browser):
    web, vehicle = car
    mem = vehicle.mem
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{web.port}/?token={TOKEN}")
    page.wait_for_function("document.getElementById('role').textContent === 'driving'", timeout=WAIT_S * 1000)

    page.locator("[data-mode=local_angle]").click()
    page.locator("#record").click()
    page.locator("#max-throttle").fill("80")

    wait_for(lambda: mem[channels.USER_MODE] == "local_angle", "mode change")
    wait_for(lambda: mem[channels.RECORDING] is True, "recording on")
    wait_for(lambda: mem[channels.USER_MAX_THROTTLE] == 0.8, "maximum throttle")
    page.keyboard.down("ArrowDown")
    wait_for(lambda: mem[channels.USER_THROTTLE] == -0.8, "reverse at the new maximum")
    page.close()


def test_page_disables_pilot_modes_without_pilot(car_without_pilot, browser):
    web, vehicle = car_without_pilot
    page = browser.new_page()
    page_errors = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(f"http://127.0.0.1:{web.port}/?token={TOKEN}")
    page.wait_for_function("document.getElementById('role').textContent === 'driving'", timeout=WAIT_S * 1000)

    assert page.locator("[data-mode=user]").is_enabled()
    assert page.locator("[data-mode=local_angle]").is_disabled()
    assert page.locator("[data-mode=local]").is_disabled()
    assert "--model" in page.locator("[data-mode=local]").get_attribute("title")
    assert page.locator("#mode-hint").is_visible()
    assert "--model" in page.locator("#mode-hint").text_content()

    page.locator("[data-mode=local]").click(force=True)
    page.keyboard.down("ArrowUp")
    wait_for(lambda: vehicle.mem[channels.USER_THROTTLE] == 0.5, "throttle after the click")
    assert vehicle.mem[channels.USER_MODE] == "user"
    assert page.locator("[data-mode=user]").get_attribute("aria-checked") == "true"
    assert page.locator("#banner").is_hidden()
    page.keyboard.up("ArrowUp")
    page.close()
    assert page_errors == []


def test_page_offers_pilot_modes_with_pilot(car, browser):
    web, _ = car
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{web.port}/?token={TOKEN}")
    page.wait_for_function("document.getElementById('role').textContent === 'driving'", timeout=WAIT_S * 1000)

    assert page.locator("[data-mode=local]").is_enabled()
    assert page.locator("[data-mode=local_angle]").is_enabled()
    assert page.locator("#mode-hint").is_hidden()
    page.close()


def test_page_without_token_rejected(car, browser):
    web, _ = car
    page = browser.new_page()

    response = page.goto(f"http://127.0.0.1:{web.port}/")

    assert response.status == 403
    assert "token" in page.content()
    page.close()

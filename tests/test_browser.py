"""The live page in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

Without Chromium the tests are skipped, except in CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import colour_image
from helpers import Feeder, free_port, wait_until

from edge import DISCLAIMER
from edge.model.load import load_model
from edge.outputs.server import LiveServer
from edge.results import FrameCounts, RunStats

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT_ENV = "EDGE_SCREENSHOT"  # set to a path to keep a screenshot of the page


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found (apt-get install -y chromium chromium-driver; package {package})"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="edge-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1000,800", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors, checked below
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(15)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def model(bundle_dir):
    return load_model(bundle_dir, device="cpu", threads=1)


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def frame_shown(driver) -> bool:
    script = "const i = document.getElementById('view'); return i.complete && i.naturalWidth > 0;"
    return driver.execute_script(script)


def check_live_page(driver, url: str) -> None:
    """The page loads, shows a camera frame, a label, the figures and the disclaimer."""
    driver.get("about:blank")  # stop an earlier page's polling (its server may be gone by now)...
    driver.get_log("browser")  # ...then drop what it logged
    driver.get(url)
    wait_until(lambda: frame_shown(driver), timeout=10)
    wait_until(lambda: text(driver, "status") == "OK", timeout=10)  # shown uppercase by the stylesheet
    disclaimer = driver.find_element("id", "disclaimer")
    assert disclaimer.is_displayed() and disclaimer.text == DISCLAIMER
    wait_until(lambda: float(text(driver, "fps")) > 0, timeout=5)
    assert text(driver, "latency").endswith("ms") and text(driver, "frame").isdigit()
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []  # no script or load errors
    assert driver.execute_script("return document.getElementById('view').naturalWidth") >= 480


def test_page_shows_the_stream_and_a_label_that_updates(browser, model, tmp_path):
    stats = RunStats(frames=FrameCounts(dropped=3), uptime_s=75)
    live = LiveServer("127.0.0.1", 0, token="pagetoken", stats=lambda: stats).start()
    try:
        with Feeder(live, model, "red", hz=25) as feeder:
            wait_until(lambda: live.latest() is not None, timeout=5)  # no 503 "no result yet" in the console
            check_live_page(browser, live.page_url)
            wait_until(lambda: text(browser, "label") == "red", timeout=10)
            assert text(browser, "score").endswith("%") and text(browser, "score-kind") == "score"
            # the top class's number is shown once: the other classes are listed under it
            assert "red" not in text(browser, "topk") and "green" in text(browser, "topk")
            wait_until(lambda: text(browser, "dropped") == "3", timeout=5)
            assert text(browser, "uptime") == "1 min 15 s"
            feeder.colour = "blue"
            wait_until(lambda: text(browser, "label") == "blue", timeout=10)
            assert text(browser, "conn") == "live"
            shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "live.png")
            assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        live.close()
    wait_until(lambda: text(browser, "conn") == "connection lost", timeout=5)


def test_page_says_uncertain_instead_of_a_label(browser, model):
    from edge.ops.postprocess import Prediction
    from edge.results import UNCERTAIN, FrameResult

    live = LiveServer("127.0.0.1", 0).start()
    try:
        top = (Prediction(0, "red", 0.38),)
        uncertain = FrameResult(time.time(), 1, UNCERTAIN, reasons=("too dark",), top=top, fps=4.0)
        live.publish(uncertain, colour_image("red"))
        browser.get(live.url)
        wait_until(lambda: text(browser, "label") == "Uncertain", timeout=10)
        assert text(browser, "reasons") == "too dark" and text(browser, "score") == "\u2013"
        assert "red" not in text(browser, "topk") and text(browser, "status") == "UNCERTAIN"
        wait_until(lambda: frame_shown(browser), timeout=10)
    finally:
        live.close()


def test_page_without_the_token_is_refused(browser):
    live = LiveServer("127.0.0.1", 0, token="pagetoken").start()
    try:
        browser.get(live.url)
        assert "access token required" in browser.find_element("tag name", "body").text
    finally:
        live.close()


def write_video(path: Path, colours: list[tuple[str, int]], fps: int = 10) -> Path:
    """An MJPEG .avi of solid-colour frames: [(colour, seconds), ...]."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    i = 0
    for colour, seconds in colours:
        for _ in range(seconds * fps):
            writer.write(cv2.cvtColor(colour_image(colour, seed=i), cv2.COLOR_RGB2BGR))
            i += 1
    writer.release()
    return path


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def test_edge_run_serves_the_live_page(browser, bundle_dir, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    video = write_video(tmp_path / "lesions.avi", [("red", 5), ("green", 10)])  # played at 10 fps
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "edge", "run", "--model", str(bundle_dir), "--source", str(video),
           "--http", f"127.0.0.1:{port}", "--token", "e2e", "--duration", "30", "--quiet"]
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}  # a fatal error at exit shows every thread's stack
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until(lambda: proc.poll() is not None or http_get(base + "/healthz")[0] == 200, timeout=20)
        assert proc.poll() is None, proc.communicate()[1]
        check_live_page(browser, f"{base}/?token=e2e")
        wait_until(lambda: text(browser, "label") == "red", timeout=5)
        wait_until(lambda: text(browser, "label") == "green", timeout=12)

        code, body = http_get(f"{base}/api/stats?token=e2e")
        assert code == 200 and json.loads(body)["frames"]["processed"] > 0
        code, body = http_get(f"{base}/metrics?token=e2e")
        samples = {s.name: s.value for f in text_string_to_metric_families(body.decode()) for s in f.samples}
        assert samples["edge_frames_processed_total"] > 10 and "edge_frames_dropped_total" in samples
        assert samples['edge_invoke_seconds_count'] > 10
        assert http_get(base + "/api/latest")[0] == 401

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
        assert proc.returncode == 0, err[-3000:]
        assert f"live page: {base}/ (open it with ?token=TOKEN" in err and "e2e" not in err  # not a terminal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- capture and review


def test_capture_button_and_the_review_page_by_keyboard(browser, model, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from edge.archive.desk import CaptureDesk
    from edge.archive.store import Archive

    archive = Archive(tmp_path / "archive")
    desk = CaptureDesk(archive, model={"name": "tiny"}, classes=model.labels, names=model.names)
    info = {"name": "tiny", "short_sha256": "0123456789ab", "smoothing": 0.4, "archive": True,
            "trained_on": {"synthetic": True}, "classes": [{"code": c, "name": c} for c in model.labels]}
    live = LiveServer("127.0.0.1", 0, token="rev", desk=desk, model_info=info).start()
    keys = ActionChains(browser)
    try:
        class Both:  # one feeder (one interpreter, one thread) for the page and the desk, like the pipeline
            def publish(self, result, frame):
                live.publish(result, frame)
                desk.publish(result, frame)

        with Feeder(Both(), model, "red", hz=20) as feeder:
            wait_until(lambda: live.latest() is not None, timeout=5)  # no 503 "no result yet" in the console
            check_live_page(browser, live.page_url)
            assert "synthetic sample data" in text(browser, "model") and text(browser, "score-kind") == "smoothed score"
            for colour in ("red", "green", "blue"):  # the button, twice, and the c key
                feeder.colour = colour
                time.sleep(1.2)  # the last second holds only this colour's frames
                if colour == "blue":
                    keys.send_keys("c").perform()
                else:
                    browser.find_element("id", "capture").click()
                wait_until(lambda: "stored" in text(browser, "capture-note") and colour in text(browser, "capture-note"),
                           timeout=5)
        assert [c.top_k[0]["label"] for c in archive.list()[0]] == ["blue", "green", "red"]

        browser.get("about:blank")
        browser.get_log("browser")
        browser.get(f"{live.url}review?token=rev")
        wait_until(lambda: text(browser, "count") == "3 of 3 captures", timeout=10)
        wait_until(lambda: text(browser, "d-id") == "capture #3", timeout=5)  # the newest, shown large
        assert browser.execute_script("return document.getElementById('picture').naturalWidth") > 0
        assert "blue" in text(browser, "d-topk")
        # capture 3: key 3 picks the third class, l goes to the lesion id, Enter saves and moves on
        keys.send_keys("3").send_keys("l").send_keys("L-9").send_keys(Keys.ENTER).perform()
        wait_until(lambda: text(browser, "d-id") == "capture #2", timeout=5)
        keys.send_keys("j").perform()  # capture 1: unknown, with a note, Ctrl+Enter from the note
        wait_until(lambda: text(browser, "d-id") == "capture #1", timeout=5)
        keys.send_keys("0").send_keys("n").send_keys("out of focus").perform()
        keys.key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
        wait_until(lambda: archive.get(1).diagnosis == "unknown", timeout=5)
        c3, c1 = archive.get(3), archive.get(1)
        assert (c3.diagnosis, c3.lesion_id) == ("blue", "L-9") and c1.note == "out of focus"
        assert archive.get(2).diagnosis is None
        wait_until(lambda: "\u2713 blue" in text(browser, "capture-3"), timeout=5)  # the list shows the review
        keys.send_keys("k").perform()
        wait_until(lambda: text(browser, "d-id") == "capture #2", timeout=5)
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
        shot = Path(os.environ.get(SCREENSHOT_ENV, "").replace(".png", "") + "-review.png"
                    if os.environ.get(SCREENSHOT_ENV) else tmp_path / "review.png")
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        live.close()
        desk.close()


def test_where_it_looks_on_the_live_and_review_pages(browser, quantized, tmp_path):
    """The button (and the m key) lays the activation map over the view and over a capture."""
    from selenium.webdriver.common.action_chains import ActionChains

    from edge.archive.desk import CaptureDesk
    from edge.archive.store import Archive
    from edge.results import OK, FrameResult

    m = load_model(quantized["bundle"], device="cpu", threads=1)
    aspect = m.spec.width / m.spec.height
    frame = colour_image("red", hw=(240, 320))
    c = m.classify(frame)
    result = FrameResult(timestamp=time.time(), frame_index=1, status=OK, top=c.top, raw_top=c.top, fps=1.0,
                         quality={"sharpness": 40.0}, cam=m.cam(c.top[0].index))
    desk = CaptureDesk(Archive(tmp_path / "archive"), model={"name": "tiny"}, classes=m.labels, aspect=aspect)
    info = {"name": "tiny", "archive": True, "explain": True, "classes": [{"code": x, "name": x} for x in m.labels]}
    live = LiveServer("127.0.0.1", 0, token="map", desk=desk, model_info=info, aspect=aspect).start()
    view_src = "return document.getElementById('view').src"
    try:
        live.publish(result, frame)
        desk.publish(result, frame)
        desk.capture()
        browser.get("about:blank")
        browser.get_log("browser")
        browser.get(live.page_url)
        wait_until(lambda: frame_shown(browser), timeout=10)
        button = browser.find_element("id", "explain")
        wait_until(button.is_displayed, timeout=5)
        assert "overlay=1" not in browser.execute_script(view_src)
        button.click()
        wait_until(lambda: "overlay=1" in browser.execute_script(view_src) and frame_shown(browser), timeout=10)
        assert button.get_attribute("aria-pressed") == "true"
        ActionChains(browser).send_keys("m").perform()  # and off again by key
        wait_until(lambda: "overlay=1" not in browser.execute_script(view_src), timeout=5)

        browser.get(f"{live.url}review?token=map")
        wait_until(lambda: text(browser, "d-id") == "capture #1", timeout=10)
        picture = "const i = document.getElementById('picture'); return [i.src, i.complete && i.naturalWidth];"
        ActionChains(browser).send_keys("m").perform()
        wait_until(lambda: (lambda got: got[0].split("?")[0].endswith("/explain.jpg") and got[1] > 0)(
            browser.execute_script(picture)), timeout=10)
        assert browser.find_element("id", "explain").get_attribute("aria-pressed") == "true"
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        live.close()
        desk.close()

"""torchstyle serve end to end: a real uvicorn on 127.0.0.1 and Debian's chromium driven by selenium.

The page is opened, two images are uploaded through its file inputs, the job is started, the
picture is seen to change while it forms, the result is downloaded, and a bad upload shows its
error on the page; two tabs' jobs queue, and one is cancelled from the page. The screenshot of the finished page is saved as docs/serve.png (the README's).
Skipped only where chromium and chromedriver are not installed (.ci/run installs them).
"""
from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from polling import until
from torchstyle import StyleTransfer
from torchstyle.serve import create_app

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
SCREENSHOT = REPO / "docs" / "serve.png"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="no browser: Debian's chromium and chromium-driver are not installed "
                              "(.ci/run installs them with apt-get where it runs as root or with sudo)"),
]


@pytest.fixture
def server():
    """The app on a real uvicorn in a thread, on a free port of 127.0.0.1; its base URL."""
    import uvicorn

    torch.manual_seed(0)
    transfer = StyleTransfer(weights=None, device="cpu", style_layers=["conv1_1", "conv2_1", "conv3_1"],
                             content_layers=["conv2_2"])
    app = create_app(transfer, snapshot_every=2, allowed_hosts=["127.0.0.1", "localhost"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    until(lambda: uvicorn_server.started, 30, "uvicorn's start")
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    uvicorn_server.should_exit = True
    thread.join(30)
    listener.close()
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def browser(tmp_path):
    """Headless chromium downloading into ``tmp_path / "downloads"``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def test_the_page_shows_the_picture_forming_and_downloads_the_result(server, browser):
    from selenium.webdriver.common.by import By

    content, style = REPO / "examples" / "images" / "landscape.jpg", REPO / "examples" / "images" / "swirls.jpg"
    with Image.open(content) as picture:
        width, height = picture.size
    expected = (128, round(128 * height / width)) if width >= height else (round(128 * width / height), 128)
    browser.get(server)
    until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#style_example option")) > 1, 30,
           "the examples' list")
    browser.find_element(By.ID, "content").send_keys(str(content))  # two uploads
    browser.find_element(By.ID, "style").send_keys(str(style))
    for name, value in (("size", "128"), ("steps", "30"), ("min_size", "64")):
        field = browser.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)
    browser.find_element(By.ID, "start").click()

    job = until(lambda: browser.find_elements(By.CSS_SELECTOR, "#jobs .job"), 30, "the job's panel")[0]
    picture, status = job.find_element(By.CLASS_NAME, "picture"), job.find_element(By.CLASS_NAME, "status")
    seen = set()

    def changed_twice() -> bool:  # three distinct pictures: two changes
        source = picture.get_attribute("src")
        if source and source.startswith("data:image/jpeg"):
            seen.add(source)
        return len(seen) >= 3

    until(changed_twice, 120, "two changes of the picture")
    until(lambda: status.text.startswith("done"), 120, "the job's end")
    assert job.find_element(By.CLASS_NAME, "error").text == ""
    assert browser.find_element(By.ID, "error").text == ""
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))

    job.find_element(By.CLASS_NAME, "result").click()
    result = until(lambda: [p for p in browser.downloads.glob("*.png")], 60, "the download")[0]
    with Image.open(result) as downloaded:
        assert downloaded.size == expected
    with Image.open(SCREENSHOT) as screenshot:
        assert screenshot.size[0] >= 800

    browser.find_element(By.ID, "content").send_keys(str(REPO / "README.md"))  # not an image
    browser.find_element(By.ID, "start").click()
    message = until(lambda: browser.find_element(By.ID, "error").text, 30, "the error message")
    assert "the content image is not an image file" in message
    assert len(browser.find_elements(By.CSS_SELECTOR, "#jobs .job")) == 1  # no job was queued


def _start(browser, server: str, steps: str):
    """Open the page in the current tab, start a job on the bundled examples; its panel."""
    from selenium.webdriver.common.by import By

    browser.get(server)
    until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#style_example option")) > 1, 30,
           "the examples' list")
    for name, value in (("size", "64"), ("steps", steps)):
        field = browser.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)
    browser.find_element(By.ID, "start").click()
    return until(lambda: browser.find_elements(By.CSS_SELECTOR, "#jobs .job"), 30, "the job's panel")[0]


def test_two_tabs_queue_their_jobs_and_cancel_from_the_page(server, browser):
    from selenium.webdriver.common.by import By

    def status(panel) -> str:
        return panel.find_element(By.CLASS_NAME, "status").text

    long_job = _start(browser, server, "2000")
    first = browser.current_window_handle
    until(lambda: status(long_job).startswith("step"), 60, "the first tab's job to run")
    browser.switch_to.new_window("tab")
    short_job = _start(browser, server, "4")
    until(lambda: status(short_job).startswith("waiting"), 30, "the second tab's place in the queue")
    assert status(short_job) == "waiting: number 1 in the queue"
    second = browser.current_window_handle
    browser.switch_to.window(first)
    long_job.find_element(By.CLASS_NAME, "cancel").click()
    until(lambda: status(long_job).startswith("cancelled at step"), 60, "the cancel")
    assert "off" in long_job.find_element(By.CLASS_NAME, "result").get_attribute("class")  # no result
    assert "off" not in long_job.find_element(By.CLASS_NAME, "trace").get_attribute("class")
    browser.switch_to.window(second)
    until(lambda: status(short_job) == "done: 4 steps", 60, "the second tab's job")

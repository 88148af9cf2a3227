"""posepipe serve's page in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Where Chromium is missing the tests are skipped, unless ``POSEPIPE_REQUIRE_BROWSER=1`` (set by
CI, whose .ci/run installs it) makes that a failure. ``POSEPIPE_SCREENSHOTS=docs/images``
keeps a screenshot of each view there (docs/serve.md shows them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

REQUIRED = os.environ.get("POSEPIPE_REQUIRE_BROWSER") == "1"
try:
    import fastapi  # noqa: F401 - the server's own extra
    import playwright.sync_api as playwright
except ImportError as exc:
    if REQUIRED:
        raise  # CI installs the test extra: a missing package is a failure there
    pytest.skip(f"the browser tests need the test extra ({exc.name})", allow_module_level=True)

from tests.conftest import SHARED, needs_shared  # noqa: E402
from tests.serve_process import ServeProcess  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CLIP = SHARED / "data" / "video" / "demo_540p_5f.mp4"
PHOTO = SHARED / "data" / "images" / "COCO_val2014_000000000241.jpg"  # 480×640, one person standing, whole
SCREENSHOTS = os.environ.get("POSEPIPE_SCREENSHOTS")
# Replies with landmarks the live view must get (the fake camera loops the 5-frame clip).
LIVE_FRAMES = 15

pytestmark = needs_shared


def chromium_or_skip() -> str:
    if not Path(CHROMIUM).exists():
        if REQUIRED:
            pytest.fail("chromium is not installed (apt-get install chromium) and POSEPIPE_REQUIRE_BROWSER=1")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def write_y4m(video: Path, out: Path) -> None:
    """The clip's frames as an uncompressed Y4M (4:2:0), which Chromium's fake camera plays in a loop."""
    import av

    with av.open(str(video)) as container, open(out, "wb") as y4m:
        for k, frame in enumerate(container.decode(video=0)):
            if k == 0:
                y4m.write(f"YUV4MPEG2 W{frame.width} H{frame.height} F30:1 Ip A1:1 C420jpeg\n".encode())
            y4m.write(b"FRAME\n" + frame.to_ndarray(format="yuv420p").tobytes())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    chromium_or_skip()
    serve = ServeProcess(tmp_path_factory.mktemp("serve-browser") / "data")
    yield serve
    serve.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = chromium_or_skip()
    camera = tmp_path_factory.mktemp("camera") / "clip.y4m"
    write_y4m(CLIP, camera)
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=[
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """The page, with every console error and uncaught exception recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["camera"], origin=server.url)
    tab = context.new_page()
    tab.errors = []
    tab.on("console", lambda m: m.type == "error" and tab.errors.append(m.text))
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    tab.goto(server.url + "/")
    yield tab
    context.close()


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"serve-{name}.png"))


def canvas_pixels(page, selector: str) -> np.ndarray:
    values = page.evaluate("""(selector) => {
        const c = document.querySelector(selector);
        return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
    }""", selector)
    width = page.evaluate("(s) => document.querySelector(s).width", selector)
    return np.array(values, np.uint8).reshape(-1, width, 4)


def test_page_loads_without_console_errors(page):
    page.wait_for_load_state("networkidle")
    assert page.title() == "posepipe"
    assert page.locator("nav button").all_inner_texts() == ["Photo", "Live camera", "Video"]
    assert page.locator("#token-bar").is_hidden()  # this server has no token
    page.goto(page.url.rstrip("/") + "/docs")
    page.wait_for_selector(".op")
    assert page.locator(".op .path").count() >= 6
    assert page.errors == []


def test_photo_shows_the_overlay_the_stages_and_33_rows(page):
    page.set_input_files("#photo-file", str(PHOTO))
    page.wait_for_selector("#photo-result:not([hidden])", timeout=60_000)
    assert page.locator("#photo-landmarks tr").count() == 1 + 33
    assert page.locator("#photo-landmarks tr").nth(1).locator("td").first.inner_text() == "nose"
    assert page.evaluate("document.getElementById('photo-overlay').naturalWidth") == 480
    assert page.locator("#photo-stages figure").count() == 5
    assert page.locator("#photo-stage-table tr").count() > 10
    assert "1 person" in page.inner_text("#photo-status")
    skeleton = canvas_pixels(page, "#photo-skeleton")
    page.mouse.move(*center(page, "#photo-skeleton"))
    page.mouse.down()
    page.mouse.move(center(page, "#photo-skeleton")[0] + 120, center(page, "#photo-skeleton")[1])
    page.mouse.up()
    turned = canvas_pixels(page, "#photo-skeleton")
    assert (skeleton[..., 3] > 0).sum() > 500 and (np.abs(turned.astype(int) - skeleton).sum(axis=-1) > 0).sum() > 200
    screenshot(page, "photo")
    assert page.errors == []


def center(page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_live_view_draws_landmarks_from_the_camera(page):
    page.click("nav button[data-view=live]")
    page.click("#live-start")
    page.wait_for_function(f"window.posepipeLive.withLandmarks >= {LIVE_FRAMES}", timeout=90_000)
    first = canvas_pixels(page, "#live-canvas")
    page.wait_for_function(f"window.posepipeLive.withLandmarks >= {LIVE_FRAMES + 5}", timeout=60_000)
    later = canvas_pixels(page, "#live-canvas")
    assert (first[..., 3] > 0).sum() > 300  # landmarks drawn
    assert (np.abs(later.astype(int) - first).sum(axis=-1) > 0).sum() > 100  # and they move with the person
    live = page.evaluate("window.posepipeLive")
    assert live["replies"] <= live["sent"]
    assert float(page.inner_text("#live-fps")) > 0 and int(page.inner_text("#live-latency")) > 0
    screenshot(page, "live")
    page.click("#live-stop")
    assert page.errors == []


def test_video_job_shows_progress_then_video_and_charts(page):
    page.click("nav button[data-view=video]")
    page.set_input_files("#video-file", str(CLIP))
    page.wait_for_selector("#video-progress-row:not([hidden])")
    page.wait_for_selector("#video-result:not([hidden])", timeout=120_000)
    assert page.evaluate("document.getElementById('video-progress').value") == 1
    assert page.inner_text("#video-status") == "done: 5 frames"
    page.wait_for_function("document.getElementById('video-overlay').readyState >= 1", timeout=30_000)
    assert page.evaluate("document.getElementById('video-overlay').videoWidth") == 960
    assert page.locator("#video-charts canvas").count() == 6
    knees = canvas_pixels(page, "#video-charts canvas[data-group=knees]")
    side_coloured = (knees[..., 0] > 200) & (knees[..., 1] > 100) & (knees[..., 2] < 60)  # the left side's orange
    assert side_coloured.sum() > 20
    assert page.locator("#video-downloads a").all_inner_texts()[0] == "poses.jsonl"
    screenshot(page, "video")
    assert page.errors == []

"""Issue 11: the HTML gallery in a real browser. A demo-shaped batch on the in-process emulator,
`batchgen report --format html --output`, then headless Chromium (driven over the DevTools
protocol with aiohttp, no new dependency) opens the page from file://: one <video> per succeeded
job, each with its metadata loaded (duration > 0) and frames actually decoded (H.264), and a
screenshot of the page is saved as an artifact.

Skipped when no Chromium is on PATH (`make browser` installs Debian's). The screenshot is written
to the test's tmp folder, and copied into $BATCHGEN_ARTIFACTS when that is set."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from batchgen import EmulatorChoice, RunSettings, run_manifest

from .helpers import batchgen_cmd, job_count, write_manifest

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser")
WAIT = 20.0  # seconds for the page's videos to load their metadata, then to decode frames

# Every <video> of the page: what its metadata and decoder say.
VIDEOS_JS = """Array.from(document.querySelectorAll('video')).map(v => ({
  src: v.getAttribute('src'), duration: v.duration, error: v.error && v.error.code,
  width: v.videoWidth, height: v.videoHeight, time: v.currentTime,
  frames: v.getVideoPlaybackQuality().totalVideoFrames}))"""

# Play them all, muted (autoplay allowed by flag): decoding, not just the moov box, is checked.
PLAY_JS = """Promise.all(Array.from(document.querySelectorAll('video')).map(v => {
  v.muted = true; return v.play().then(() => 'ok', e => String(e)); }))"""

PAUSE_JS = "document.querySelectorAll('video').forEach(v => { v.pause(); v.currentTime = 0.5; })"


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no Chromium on PATH (tried {', '.join(BROWSERS)}); `make browser` installs it")


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[str]:
    """A headless Chromium of our own; yields its DevTools HTTP address."""
    profile = tmp_path / "profile"
    args = [
        browser(),
        "--headless=new",
        "--disable-gpu",
        "--no-sandbox",  # CI runs as root
        "--no-first-run",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,900",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    with (tmp_path / "chromium.log").open("wb") as log:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.is_file() and port_file.read_text().strip():
                break
            assert proc.poll() is None, (tmp_path / "chromium.log").read_text()[-2000:]
            time.sleep(0.05)
        else:
            pytest.fail("Chromium did not open its DevTools port in 15 s")
        yield f"http://127.0.0.1:{port_file.read_text().split()[0]}"
    finally:
        try:  # its whole process group, by its id (it started a session of its own)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class Page:
    """The smallest DevTools client: one page target, calls answered in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.last_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        await self.ws.send_json({"id": self.last_id, "method": method, "params": params})
        async for msg in self.ws:
            answer = json.loads(msg.data)
            if answer.get("id") == self.last_id:
                assert "error" not in answer, (method, answer["error"])
                result: dict[str, Any] = answer["result"]
                return result
        raise AssertionError(f"DevTools connection closed during {method}")

    async def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        result = await self.call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")  # none for undefined

    async def poll_videos(self, ready: Any) -> list[dict[str, Any]]:
        """The videos once ready(videos) holds, or as they are after WAIT seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            videos: list[dict[str, Any]] = await self.evaluate(VIDEOS_JS)
            if (videos and ready(videos)) or loop.time() > deadline:
                return videos
            await asyncio.sleep(0.2)


async def inspect(devtools: str, url: str, shot: Path) -> tuple[list[Any], list[Any], list[Any]]:
    """Open url; (videos after metadata, play() outcomes, videos after playing); shot saved."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{devtools}/json/list") as response:
            targets = await response.json()
        target = next(t for t in targets if t["type"] == "page")
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws)
            await page.call("Page.enable")
            await page.call("Page.navigate", url=url)
            loaded = await page.poll_videos(
                lambda vs: all(v["duration"] and v["duration"] > 0 for v in vs)
            )
            played = await page.evaluate(PLAY_JS, await_promise=True)
            playing = await page.poll_videos(
                lambda vs: all(v["frames"] > 0 and v["time"] > 0 for v in vs)
            )
            await page.evaluate(PAUSE_JS)
            await asyncio.sleep(0.5)  # the seeked frame painted
            image = await page.call(
                "Page.captureScreenshot", format="png", captureBeyondViewport=True
            )
            shot.write_bytes(base64.b64decode(image["data"]))
    return loaded, played, playing


def test_gallery_videos_load_and_play_in_chromium(chromium: str, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "batch")
    settings = RunSettings(emulator=EmulatorChoice(time_scale=0.002))
    assert run_manifest(manifest, settings).exit_code == 0
    done = subprocess.run(
        batchgen_cmd(
            "report", str(manifest), "--emulator", "--format", "html", "--output", "r/report.html"
        ),
        cwd=manifest.parent,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    report = manifest.parent / "r" / "report.html"
    shot = tmp_path / "gallery.png"

    loaded, played, playing = asyncio.run(inspect(chromium, report.as_uri(), shot))

    succeeded = job_count()
    assert len(loaded) == succeeded, loaded
    for video in loaded:
        assert video["error"] is None, video
        assert video["duration"] and video["duration"] > 0, video  # NaN before metadata
        assert video["width"] > 0 and video["height"] > 0, video
    assert played == ["ok"] * succeeded
    for video in playing:
        assert video["frames"] > 0 and video["time"] > 0, video  # H.264 decoded, not just parsed
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artifacts = os.environ.get("BATCHGEN_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "gallery.png")
    print(f"durations {[v['duration'] for v in loaded]}; screenshot {shot}")

"""The status pages as a browser shows them: headless Chromium against the
daemon as a subprocess, at desktop and at phone width.

Each page is read twice: its DOM after rendering (--dump-dom), and a
screenshot whose size and pixels are checked: the down colour is there, and
the page is not blank. Skipped, with the reason, where Chromium is missing.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import DaemonProcess, http, wait_for

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian: apt install chromium)"
)

# The light scheme's colours in base.html (headless Chromium prefers light).
DOWN = (0xC0, 0x26, 0x2D)
UP = (0x1F, 0x7A, 0x3A)
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}

MONITORS = """
[monitors.db-backup]
name = "Nightly DB backup"
period = "1h"
max_runtime = "1m"

[monitors.web]
name = "Web site"
period = "1h"

[monitors.mail]
name = "Mail relay"
period = "1d"
"""


def chromium(tmp_path: Path, size: tuple[int, int], *args: str) -> bytes:
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--window-size={size[0]},{size[1]}",
            f"--user-data-dir={tmp_path / 'chromium'}",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        timeout=120,
        check=True,
    )
    return result.stdout


@pytest.fixture
def running(daemon: DaemonProcess) -> DaemonProcess:
    """A daemon with one monitor down after a failed run, one up, one new."""
    daemon.write_config(MONITORS)
    daemon.start()
    assert daemon.ping("db-backup/start").status == 200
    assert daemon.ping("db-backup/1", data=b"pg_dump: disk full").status == 200
    assert daemon.ping("web").status == 200
    wait_for(lambda: daemon.monitor("db-backup")["status"] == "down")
    return daemon


def pixels(png: bytes) -> tuple[tuple[int, int], set[tuple[int, int, int]]]:
    image = pytest.importorskip("PIL.Image").open(io.BytesIO(png)).convert("RGB")
    return image.size, {rgb for _, rgb in image.getcolors(maxcolors=1 << 20)}


@pytest.mark.parametrize("screen", SIZES)
def test_the_overview_renders_rows_with_history_strips(running, tmp_path, screen):
    size = SIZES[screen]
    url = running.base_url + "/"
    dom = chromium(tmp_path, size, "--dump-dom", url).decode()
    rows = re.findall(r'<li class="card s-(\w+)">.*?</li>', dom, re.S)
    assert rows == ["down", "new", "up"]
    down_row = re.search(r'<li class="card s-down">(.*?)</li>', dom, re.S)
    assert down_row is not None
    assert '<svg class="strip"' in down_row.group(1)
    assert 'class="h-down"><title>' in down_row.group(1)

    shot = tmp_path / f"index-{screen}.png"
    chromium(tmp_path, size, f"--screenshot={shot}", url)
    (width, height), colours = pixels(shot.read_bytes())
    assert (width, height) == size
    assert DOWN in colours
    assert UP in colours
    # Not a blank page: text, cards, pills and strips make many colours.
    assert len(colours) > 50


@pytest.mark.parametrize("screen", SIZES)
def test_the_monitor_page_renders_its_chart_and_ping_urls(running, tmp_path, screen):
    size = SIZES[screen]
    url = running.base_url + "/monitors/db-backup"
    dom = chromium(tmp_path, size, "--dump-dom", url).decode()
    assert '<svg class="runs"' in dom
    assert 'class="limit"' in dom
    assert f"<code>{running.base_url}/ping/db-backup</code>" in dom
    assert "Uptime:" in dom

    shot = tmp_path / f"monitor-{screen}.png"
    chromium(tmp_path, size, f"--screenshot={shot}", url)
    (width, height), colours = pixels(shot.read_bytes())
    assert (width, height) == size
    assert DOWN in colours
    assert len(colours) > 50


def test_the_page_fits_a_phone_without_sideways_scrolling(running):
    # The viewport meta and the narrow layout: checked in the HTML the
    # daemon serves, since a screenshot is clipped to the window anyway.
    html = http(running.base_url + "/").body.decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "@media (max-width: 44rem)" in html

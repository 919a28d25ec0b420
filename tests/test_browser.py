"""JupyterLab in a real headless Chromium (Debian's, driven by Playwright).

The test starts JupyterLab on 127.0.0.1 with a token, opens the tour, runs
all cells, drags the isochrone's log-age slider and checks that the plot and
the read-out changed. Screenshots go to ``test-artifacts/``. BokehJS must be
inline: the browser has no internet, like many JupyterHubs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is not installed; ./dev test installs it")
        pytest.skip("Debian chromium is not installed (./dev test installs it)")
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of notebooks/ (outputs stay out of the repo)."""
    nbdir = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", nbdir)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell (no windowing) so outputs below the fold exist in the DOM.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), os.urandom(16).hex()
    env = dict(os.environ, OCNB_FAST="1", JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nbdir}",
           f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
           f"--LabApp.workspaces_dir={tmp_path / 'ws'}", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=nbdir)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
        time.sleep(0.5)
    yield base, token
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _wait_all_executed(page, timeout_s: float) -> None:
    """Wait until every code cell has an execution count and none is running."""
    deadline = time.time() + timeout_s
    js = """() => {
        const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
        return {n: p.length, running: p.filter(t => t.includes('*')).length,
                done: p.filter(t => /\\[\\d+\\]/.test(t)).length,
                errors: document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"] .ansi-red-fg, .jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]').length};
    }"""
    state = None
    while time.time() < deadline:
        state = page.evaluate(js)
        if state["n"] and state["done"] == state["n"] and not state["running"]:
            return
        time.sleep(1)
    raise AssertionError(f"notebook did not finish in {timeout_s} s: {state}")


# (notebook, text of the panel's cell, slider label, text of a read-out that must change or None)
PANELS = [
    ("00_tour", "panels.ClusterExplorer(", "log age", "Myr"),
    ("01_cmd_quadtree_ann", "panels.QuadTreeInspector(", "level", None),
]


@pytest.mark.parametrize("notebook,cell_text,slider_text,readout_text", PANELS, ids=[p[0] for p in PANELS])
def test_slider_redraws_panel(jupyterlab, artifacts_dir, notebook, cell_text, slider_text, readout_text):
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        failed_external = []
        page.on("requestfailed", lambda r: failed_external.append(r.url) if "127.0.0.1" not in r.url else None)
        page.goto(f"{base}/lab/tree/{notebook}.ipynb?reset&token={token}")
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        # Run All only once the kernel is up, or the request can be lost while it starts.
        page.locator("#jp-main-statusbar", has_text="Idle").first.wait_for(timeout=90_000)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            _wait_all_executed(page, timeout_s=420)
        except AssertionError:
            page.screenshot(path=str(artifacts_dir / f"browser_{notebook}_timeout.png"), full_page=False)
            raise

        # The panel's cell: its first output holds the widgets, its last one the bokeh plot.
        cell = page.locator(".jp-CodeCell", has_text=cell_text).first
        outputs = cell.locator(".jp-OutputArea-output")
        slider = outputs.locator(".widget-hslider", has_text=slider_text).first
        plot = outputs.last
        plot.locator("canvas").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        readout = outputs.locator(".widget-html", has_text=readout_text).first if readout_text else None
        readout_before = readout.inner_text() if readout else None
        plot.scroll_into_view_if_needed()
        before = plot.screenshot()
        page.screenshot(path=str(artifacts_dir / f"browser_{notebook}_before.png"), full_page=False)

        slider.scroll_into_view_if_needed()
        handle = slider.locator(".noUi-handle").first
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] - 80, box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()

        deadline = time.time() + 30
        readout_after = readout_before
        while readout and time.time() < deadline and readout_after == readout_before:
            page.wait_for_timeout(500)
            readout_after = readout.inner_text()
        page.wait_for_timeout(2500)  # let bokeh redraw the isochrone
        plot.scroll_into_view_if_needed()
        after = plot.screenshot()
        page.screenshot(path=str(artifacts_dir / f"browser_{notebook}_after.png"), full_page=False)
        browser.close()

    if readout_text:
        assert readout_after != readout_before, "the slider did not change the panel state"
    assert before != after, "the isochrone plot did not redraw after moving the slider"
    cdn = [u for u in failed_external if "bokeh" in u or "holoviews" in u]
    assert not cdn, f"panels tried to load BokehJS/HoloViews from a CDN: {cdn}"

"""JupyterLab in a real headless Chromium (Debian's, driven by Playwright), as a user would use it.

For every notebook, the test starts JupyterLab on 127.0.0.1 with a token, runs all cells, then drives
**every widget of every panel** (a panel is a cell whose output holds ipywidgets controls): sliders are
dragged with the mouse, dropdowns and lists get another option, checkboxes and toggles are flipped (and
flipped back), buttons are clicked, number fields are stepped. After each action it waits for the kernel to
be idle and for BokehJS to redraw. It fails on any error output, any traceback printed in a cell, a panel
or a widget callback, any stderr line not on the short allow-list of ``tests/conftest.py``, and any
uncaught error in the page. Every kernel message is watched (``--expose-app-in-browser``), so errors
raised in widget callbacks, which JupyterLab shows in no cell, are caught too.

Artefacts in ``test-artifacts/``: a screenshot of every panel before and after it was driven, a JSON log
of every action (widget, value before/after, whether the plot redrew, seconds), the browser console and
the JupyterLab log. BokehJS must be inline: the browser has no internet, like many JupyterHubs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: seconds: Run All in FAST mode; one widget action (a "Fit" button samples a posterior)
RUN_ALL_TIMEOUT, ACTION_TIMEOUT = 480, 180

# with pytest-xdist (-n 2 --dist loadgroup): one worker runs the kernels of the notebook and browser tests
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("jupyter")]


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
def jupyterlab(tmp_path, artifacts_dir, request):
    """A JupyterLab server on 127.0.0.1 serving a copy of notebooks/ (outputs stay out of the repo)."""
    nbdir = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", nbdir, ignore=shutil.ignore_patterns("*.py", ".ipynb_checkpoints"))
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell (no windowing) so outputs below the fold exist in the DOM.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), os.urandom(16).hex()
    env = dict(os.environ, OCNB_FAST="1", JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"))
    if request.node.callspec.id in AS_A_USER:
        env.pop("MPLBACKEND", None)
        env.pop("OCNB_PROGRESS", None)
        # the test data home without its trained models: the notebook trains them (seconds in FAST mode)
        from ocnb.config import data_home

        home, shared = tmp_path / "data-home", data_home()
        (home / "models").mkdir(parents=True)
        for entry in shared.iterdir() if shared.is_dir() else []:
            if entry.name != "models":
                (home / entry.name).symlink_to(entry)
        env["OCNB_DATA_DIR"] = str(home)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nbdir}", "--expose-app-in-browser",
           f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "w") as log:
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
                pytest.fail("JupyterLab did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.5)
        try:
            yield base, token
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    shutil.copy(log_path, artifacts_dir / f"browser_{request.node.callspec.id}_jupyterlab.log")


# --- the kernel, watched from the page ------------------------------------------------------------------

#: Installs a listener on every iopub message of the notebook's kernel: status (busy/idle), errors,
#: stderr, and tracebacks printed to stdout or displayed as text.
_HOOK = r"""() => {
    const app = window.jupyterapp;
    if (!app) return "window.jupyterapp missing (needs --expose-app-in-browser)";
    const nb = app.shell.currentWidget;
    const kernel = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
    if (!kernel) return "no kernel yet";
    if (window.__ocnb && window.__ocnb.kernelId === kernel.id) return "ok";
    const w = window.__ocnb = {kernelId: kernel.id, state: "idle", busy: 0, changed: Date.now(), messages: [],
                               comms: {}};
    // What each comm is (target, last message sent by the page), to explain a kernel's "No such comm: <id>".
    kernel.anyMessage.connect((_, a) => {
        const m = a.msg, c = m.content || {};
        if (!c.comm_id) return;
        const e = w.comms[c.comm_id] = w.comms[c.comm_id] || {target: c.target_name || "?", events: []};
        if (c.target_name) e.target = c.target_name;
        e.events.push(a.direction + " " + m.header.msg_type + " " + JSON.stringify(c.data || {}).slice(0, 120));
    });
    kernel.iopubMessage.connect((_, msg) => {
        const t = msg.header.msg_type, c = msg.content;
        if (t === "status") {
            w.state = c.execution_state; w.changed = Date.now();
            if (c.execution_state === "busy") w.busy += 1;
        } else if (t === "error") {
            w.messages.push({kind: "error", text: c.ename + ": " + c.evalue + "\n" + (c.traceback || []).join("\n")});
        } else if (t === "stream") {
            w.messages.push({kind: c.name, text: c.text});
        } else if ((t === "display_data" || t === "execute_result") && c.data && c.data["text/plain"]) {
            w.messages.push({kind: "display", text: String(c.data["text/plain"])});
        }
        // A plot's comm callback that raises (e.g. Bokeh rejecting a property BokehJS sent back) is shown by
        // Panel as <pre>Traceback ...</pre> in an update of the plot's output: no error message, no stderr.
        const html = (t === "display_data" || t === "execute_result" || t === "update_display_data")
            && c.data && c.data["text/html"];
        if (html && String(html).includes("Traceback (most recent call last)")) {
            w.messages.push({kind: "html", text: String(html).replace(/<[^>]*>/g, "")});
        }
    });
    return "ok";
}"""

_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception): ", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SHOWN_TRACEBACK = re.compile(r"Traceback \(most recent call last\)")


class Kernel:
    """The page's view of the kernel: busy/idle, and the problems in what it sent."""

    def __init__(self, page, output_checks):
        self.page, self.checks, self.seen = page, output_checks, 0

    def hook(self, timeout_s: float = 90) -> None:
        deadline, answer = time.time() + timeout_s, None
        while time.time() < deadline:
            answer = self.page.evaluate(_HOOK)
            if answer == "ok":
                return
            time.sleep(0.5)
        raise AssertionError(f"could not watch the kernel: {answer}")

    def busy_count(self) -> int:
        return self.page.evaluate("() => window.__ocnb.busy")

    def wait_idle(self, busy_before: int, timeout_s: float, quiet_ms: int = 800, start_s: float = 3.0) -> float:
        """Wait until the kernel went busy (or ``start_s`` passed without it) and has been idle ``quiet_ms``."""
        t0 = time.time()
        while time.time() - t0 < timeout_s:
            s = self.page.evaluate("() => ({state: window.__ocnb.state, busy: window.__ocnb.busy,"
                                   " quiet: Date.now() - window.__ocnb.changed})")
            started = s["busy"] > busy_before or time.time() - t0 > start_s
            if started and s["state"] == "idle" and s["quiet"] >= quiet_ms:
                return time.time() - t0
            time.sleep(0.25)
        raise AssertionError(f"the kernel was still busy after {timeout_s} s")

    def _comm_details(self, lines: list[str]) -> str:
        ids = [m.group(1) for line in lines for m in [re.search(r"No such comm: ([\w-]+)", line)] if m]
        if not ids:
            return ""
        comms = self.page.evaluate("(ids) => ids.map(i => window.__ocnb.comms[i] || null)", ids)
        return "".join(f"\n      comm {i}: {c['target'] if c else 'never seen by the page'}"
                       + ("".join(f"\n        {e}" for e in c["events"][-4:]) if c else "")
                       for i, c in zip(ids, comms, strict=True))

    def problems(self, where: str) -> list[str]:
        """Problems in the messages received since the last call."""
        msgs = self.page.evaluate("(n) => window.__ocnb.messages.slice(n)", self.seen)
        self.seen += len(msgs)
        out = []
        for m in msgs:
            text = _ANSI.sub("", m["text"])
            if m["kind"] == "error":
                out.append(f"{where}: error: {text[:1500]}")
            elif m["kind"] == "stderr":
                noise = self.checks.stderr_noise(text)
                if noise:
                    out.append(f"{where}: stderr: " + " | ".join(noise[:8]) + self._comm_details(noise))
            elif m["kind"] == "html":
                out.append(f"{where}: traceback shown in a plot's output: {text[-1500:]}")
            elif _TRACEBACK.search(text):
                out.append(f"{where}: traceback in output: {text[:1500]}")
        return out


def _wait_redraw(page, cell, before, timeout_ms: int) -> None:
    """Let BokehJS redraw: return once the cell's plots changed, or after ``timeout_ms`` (no redraw)."""
    t0 = time.time()
    while (time.time() - t0) * 1000 < timeout_ms:
        page.wait_for_timeout(100)
        if _plot_fingerprint(cell) != before:
            page.wait_for_timeout(150)  # the rest of a multi-plot redraw
            return


def _wait_all_executed(page, timeout_s: float) -> None:
    """Wait until every code cell has an execution count and none is running."""
    deadline = time.time() + timeout_s
    js = """() => {
        const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
        return {n: p.length, running: p.filter(t => t.includes('*')).length,
                done: p.filter(t => /\\[\\d+\\]/.test(t)).length};
    }"""
    state = None
    while time.time() < deadline:
        state = page.evaluate(js)
        if state["n"] and state["done"] == state["n"] and not state["running"]:
            return
        time.sleep(1)
    raise AssertionError(f"notebook did not finish in {timeout_s} s: {state}")


# --- widgets --------------------------------------------------------------------------------------------

#: ipywidgets 8 controls, by the CSS class of their root element
CONTROLS = {
    "slider": ".widget-hslider, .widget-vslider",
    "dropdown": ".widget-dropdown",
    "select": ".widget-select, .widget-select-multiple",
    "checkbox": ".widget-checkbox",
    "toggle": ".widget-toggle-button",
    "choice": ".widget-toggle-buttons, .widget-radio",
    "number": ".widget-text:has(input[type=number])",
    "text": ".widget-text:has(input[type=text]), .widget-textarea",
    "button": "button.widget-button",
}
ALL_CONTROLS = ", ".join(CONTROLS.values())
#: order of driving: values first; checkboxes/toggles (flipped back) and buttons (e.g. a slow "Fit") last
ORDER = ["slider", "dropdown", "select", "choice", "number", "text", "checkbox", "toggle", "button"]
#: notebooks whose panels are driven a second time after their buttons were clicked: a change after a "Fit"
#: redraws a plot that now holds a fit (notebook 01's gradient panel printed a traceback on every such change)
AFTER_BUTTONS = {"01_cmd_quadtree_ann"}
#: notebooks run as a user sees them: matplotlib's inline backend (the tests' MPLBACKEND=Agg would show no
#: figure at all), every figure saved as an artefact, and models trained in the notebook, not taken from the
#: test cache, so that the training progress bar shows
AS_A_USER = {"01_cmd_quadtree_ann"}
#: the progress bar of each model trained in a notebook of AS_A_USER: (notebook, text in the bar)
TRAINING_BARS = {"01_cmd_quadtree_ann": ("ANNEnsemble (3 members)", "epoch")}


def _kind(el) -> str:
    for kind in ORDER:
        if el.evaluate("(e, sel) => e.matches(sel)", CONTROLS[kind]):
            return kind
    return "?"


def _label(el) -> str:
    text = el.evaluate("""e => {
        const clean = s => (s || "").replace(/[\\u200b\\s]+/g, " ").trim();
        for (const d of e.querySelectorAll('.widget-label, .widget-label-basic, label')) {
            if (clean(d.textContent)) return clean(d.textContent);
        }
        return clean(e.getAttribute('title')) || clean(e.textContent);
    }""")
    return (text or "").strip()[:40] or "(no label)"


def _value(el, kind: str) -> str:
    if kind == "slider":
        return el.evaluate("e => [...e.querySelectorAll('.widget-readout')].map(r => r.textContent.trim()).join(' ')")
    if kind in ("dropdown", "select"):
        return el.evaluate("e => [...e.querySelector('select').selectedOptions].map(o => o.textContent).join(',')")
    if kind == "checkbox":
        return str(el.locator("input[type=checkbox]").is_checked())
    if kind in ("number", "text"):
        return el.locator("input, textarea").first.input_value()
    if kind in ("toggle", "choice"):
        return el.evaluate("e => [...e.querySelectorAll('.mod-active, input:checked')].map(x => x.textContent"
                           " || x.value).join(',') || e.className")
    return ""


def _drag_slider(page, el) -> None:
    handle = el.locator(".noUi-handle").first
    track = el.locator(".noUi-target").first
    handle.scroll_into_view_if_needed()
    h, t = handle.bounding_box(), track.bounding_box()
    x0, y = h["x"] + h["width"] / 2, h["y"] + h["height"] / 2
    # move a third of the track towards the side with more room
    x1 = x0 + t["width"] / 3 if x0 < t["x"] + t["width"] / 2 else x0 - t["width"] / 3
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=10)
    page.mouse.up()


def _choose_other(el) -> bool:
    select = el.locator("select").first
    n = select.locator("option").count()
    if n < 2:
        return False
    current = select.evaluate("s => s.selectedIndex")
    select.select_option(index=(current + 1) % n if current >= 0 else 0)
    return True


def _act(page, el, kind: str, restore: bool = False) -> bool:
    """Drive one control as a user would; False when there is nothing to do (one option only)."""
    el.scroll_into_view_if_needed()
    if kind == "slider":
        _drag_slider(page, el)
    elif kind in ("dropdown", "select"):
        return _choose_other(el)
    elif kind == "checkbox":
        el.locator("input[type=checkbox]").click()
    elif kind in ("toggle", "button"):
        el.click()
    elif kind == "choice":
        options = el.locator("button:not(.mod-active), input[type=radio]:not(:checked)")
        if not options.count():
            return False
        options.first.click()
    elif kind == "number":
        box = el.locator("input").first
        box.click()
        box.press("ArrowUp")
        box.press("Enter")
    elif kind == "text":
        box = el.locator("input, textarea").first
        box.click()
        box.press("End")
        box.press("Enter")
    return True


def _plot_fingerprint(cell) -> bytes:
    """Screenshots of the cell's outputs that hold no control (the plots), concatenated."""
    outputs = cell.locator(".jp-OutputArea-output")
    shots = []
    for i in range(outputs.count()):
        out = outputs.nth(i)
        if out.locator(ALL_CONTROLS).count() == 0 and out.is_visible():
            box = out.bounding_box()
            if box and box["height"] > 20:
                shots.append(out.screenshot())
    return b"".join(shots)


def _shown_tracebacks(cell) -> list[str]:
    """Python tracebacks visible in the cell's outputs (Panel prints a failed plot callback's into the plot)."""
    text = cell.locator(".jp-OutputArea").first.inner_text()
    return [text[max(0, m.start() - 200):m.start() + 1200] for m in _SHOWN_TRACEBACK.finditer(text)]


def _visible_controls(cell) -> list:
    loc = cell.locator(".jp-OutputArea").locator(ALL_CONTROLS)
    out = []
    for i in range(loc.count()):
        el = loc.nth(i)
        disabled = el.evaluate("e => e.disabled === true || e.classList.contains('mod-disabled') "
                               "|| !!e.querySelector('input:disabled, select:disabled')")
        if el.is_visible() and not disabled:
            out.append(el)
    return out


def _check_figures_and_bars(page, cells, notebook: str, artifacts_dir) -> list[str]:
    """Every matplotlib figure was drawn (saved as an artefact to look at); the training bars are there."""
    problems, n_figures = [], 0
    for i in range(cells.count()):
        images = cells.nth(i).locator(".jp-OutputArea-output img")
        for k in range(images.count()):
            img = images.nth(k)
            img.scroll_into_view_if_needed()
            if not img.evaluate("e => e.complete && e.naturalWidth > 0"):
                problems.append(f"cell {i}: figure {k} did not render")
                continue
            img.screenshot(path=str(artifacts_dir / f"browser_{notebook}_figure_cell{i}_{k}.png"))
            n_figures += 1
    if not n_figures:
        problems.append(f"{notebook}: no matplotlib figure was displayed")
    bar_text, unit = TRAINING_BARS.get(notebook, (None, None))
    if bar_text:
        bars = page.locator(".widget-hprogress, .widget-progress")  # matched inside each output below
        texts = page.locator(".jp-OutputArea-output").filter(has=bars).all_inner_texts()
        if not any(bar_text in t.replace("\u2007", " ") and unit in t for t in texts):
            problems.append(f"{notebook}: no training progress bar ({bar_text!r}, per {unit}) in any output; "
                            f"bars seen: {[t[:80] for t in texts]}")
    return problems


# --- the test -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_widget_of_every_panel(jupyterlab, artifacts_dir, output_checks, notebook):
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    problems: list[str] = []
    actions: list[dict] = []
    console: list[str] = []
    context = ["opening the notebook"]  # what the test is doing, for errors reported by the page
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        failed_external = []
        page.on("requestfailed", lambda r: failed_external.append(r.url) if "127.0.0.1" not in r.url else None)
        page.on("requestfailed", lambda r: console.append(f"request failed: {r.url} ({r.failure})"))

        def on_console(msg):
            console.append(f"{msg.type}: {msg.text}")
            # BokehJS reports a document patch it cannot apply (the plot silently stops following the widgets)
            # as a console error; resources that could not load are checked below (no CDN).
            if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
                problems.append(f"{context[0]}: console error in the page: {msg.text[:500]}")
            # A failed plot callback in the kernel (pyviz_comms: "Python failed with the following traceback", e.g.
            # Bokeh rejecting a property BokehJS sent back) and BokehJS' own complaints are console *warnings*.
            elif msg.type == "warning" and ("Python failed" in msg.text or "bokeh" in msg.text.lower()):
                problems.append(f"{context[0]}: BokehJS warning in the page: {msg.text[:500]}")

        page.on("console", on_console)
        page.on("pageerror", lambda e: problems.append(f"{context[0]}: uncaught error in the page: {e}"))
        page.goto(f"{base}/lab/tree/{notebook}.ipynb?reset&token={token}")
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        # Run All only once the kernel is up, or the request can be lost while it starts.
        page.locator("#jp-main-statusbar", has_text="Idle").first.wait_for(timeout=90_000)
        kernel = Kernel(page, output_checks)
        kernel.hook()
        kernel.problems("kernel start")  # start-up chatter belongs to no cell and is not the notebook's
        context[0] = "Run All"
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            _wait_all_executed(page, timeout_s=RUN_ALL_TIMEOUT)
            kernel.wait_idle(0, timeout_s=ACTION_TIMEOUT)
        except AssertionError:
            page.screenshot(path=str(artifacts_dir / f"browser_{notebook}_timeout.png"))
            raise
        page.wait_for_timeout(1500)  # BokehJS renders after the kernel is done
        problems += kernel.problems("Run All")

        cells = page.locator(".jp-Notebook .jp-CodeCell")
        if notebook in AS_A_USER:
            problems += _check_figures_and_bars(page, cells, notebook, artifacts_dir)
        panels = [i for i in range(cells.count()) if _visible_controls(cells.nth(i))]
        for k, index in enumerate(panels):
            cell = cells.nth(index)
            name = f"{notebook}_panel{k + 1}_cell{index}"
            cell.scroll_into_view_if_needed()
            cell.locator(".jp-OutputArea").screenshot(path=str(artifacts_dir / f"browser_{name}_before.png"))
            controls = sorted(_visible_controls(cell), key=lambda el: ORDER.index(_kind(el)))
            if notebook in AFTER_BUTTONS and any(_kind(el) == "button" for el in controls):
                # once more after the buttons: every change of a value now redraws a plot that holds a fit
                controls += [el for el in controls if _kind(el) not in ("button", "toggle")]
            redrawn, seen_button = 0, False
            for el in controls:
                kind, label = _kind(el), _label(el)
                if seen_button and kind != "button":
                    label += " (after the buttons)"
                seen_button |= kind == "button"
                context[0] = f"{name}: {kind} {label!r}"
                record = {"panel": name, "kind": kind, "label": label, "value_before": _value(el, kind)}
                plots_before = _plot_fingerprint(cell)
                busy = kernel.busy_count()
                t0 = time.time()
                if not _act(page, el, kind):
                    actions.append({**record, "skipped": "only one option"})
                    continue
                try:
                    kernel.wait_idle(busy, timeout_s=ACTION_TIMEOUT)
                except AssertionError as exc:
                    problems.append(f"{name}: {kind} {label!r}: {exc}")
                    break
                _wait_redraw(page, cell, plots_before, timeout_ms=1000)
                record["value_after"] = _value(el, kind) if el.is_visible() else "(hidden)"
                record["plot_changed"] = _plot_fingerprint(cell) != plots_before
                redrawn += record["plot_changed"]
                problems += kernel.problems(f"{name}: {kind} {label!r}")
                problems += [f"{name}: {kind} {label!r}: traceback shown in the panel: {t}"
                             for t in _shown_tracebacks(cell)]
                if kind in ("checkbox", "toggle"):  # flip back, so later controls see the default state
                    busy = kernel.busy_count()
                    _act(page, el, kind)
                    kernel.wait_idle(busy, timeout_s=ACTION_TIMEOUT)
                    problems += kernel.problems(f"{name}: {kind} {label!r} (back)")
                record["seconds"] = round(time.time() - t0, 1)
                actions.append(record)
                if kind in ("slider", "dropdown", "select") and record["value_after"] == record["value_before"]:
                    problems.append(f"{name}: {kind} {label!r} did not change ({record['value_before']!r})")
            page.wait_for_timeout(500)
            cell.scroll_into_view_if_needed()
            cell.locator(".jp-OutputArea").screenshot(path=str(artifacts_dir / f"browser_{name}_after.png"))
            if controls and not redrawn:
                problems.append(f"{name}: no control redrew the panel's plot")
        problems += kernel.problems("end")
        for i in range(cells.count()):  # what a user scrolling through the notebook would see
            problems += [f"cell {i}: traceback shown in its outputs: {t}" for t in _shown_tracebacks(cells.nth(i))]
        page.screenshot(path=str(artifacts_dir / f"browser_{notebook}_page.png"))
        browser.close()

    (artifacts_dir / f"browser_{notebook}_actions.json").write_text(json.dumps(actions, indent=1))
    (artifacts_dir / f"browser_{notebook}_console.txt").write_text("\n".join(console))
    assert panels, f"{notebook}: no panel (cell with widget controls) found"
    if failed_external:  # BokehJS, HoloViews and Panel must be inline: many JupyterHubs have no internet
        problems.append(f"the page tried to load from the internet: {sorted(set(failed_external))[:8]}")
    assert not problems, f"{notebook}: {len(problems)} problem(s) (artefacts in test-artifacts/):\n" + \
        "\n".join(problems)

"""Shared test configuration.

Tests run in FAST mode with their own data home (``./dev test`` sets both;
running pytest directly falls back to a folder under ``.cache/``), so they
never touch a user's ``~/.ocnb_data``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OCNB_FAST", "1")
os.environ.setdefault("OCNB_DATA_DIR", str(ROOT / ".cache" / "test-data-home"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Folder for test artefacts (screenshots, executed notebooks); git-ignored."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def tmp_data_home(tmp_path, monkeypatch) -> Path:
    """An empty, private data home for tests that write caches."""
    monkeypatch.setenv("OCNB_DATA_DIR", str(tmp_path / "data-home"))
    return tmp_path / "data-home"


# --- what counts as a problem in a notebook's outputs (headless run and browser test alike) ---------------

#: stderr lines a notebook may print, each with the reason it cannot be silenced at its source. Keep this
#: short: library chatter (TensorFlow absl/oneDNN lines, tf.function retracing, PyMC sampler progress)
#: is not on it and is silenced where it is produced.
STDERR_ALLOWED: list[tuple[str, str]] = [
    # (regex matched against each stripped line, why it is allowed)
]


def _text(output) -> str:
    """A stream's text, or a display's text/plain (not HTML/JS, whose scripts are full of 'Error')."""
    text = output.get("text", "")
    if isinstance(text, list):
        text = "".join(text)
    data = output.get("data", {})
    for mime in ("text/plain",):
        if mime in data:
            value = data[mime]
            text += "".join(value) if isinstance(value, list) else value
    return text


def stderr_noise(lines: str) -> list[str]:
    """Lines of stderr that are not on :data:`STDERR_ALLOWED`."""
    out = []
    for line in lines.splitlines():
        line = line.strip()
        if line and not any(re.search(pattern, line) for pattern, _ in STDERR_ALLOWED):
            out.append(line)
    return out


_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception): ", re.M)


def output_problems(outputs, where: str) -> list[str]:
    """Error outputs, tracebacks printed as text, and stderr noise in a list of nbformat outputs."""
    problems = []
    for o in outputs:
        kind = o.get("output_type")
        if kind == "error":
            problems.append(f"{where}: {o.get('ename')}: {o.get('evalue')}")
        elif kind == "stream" and o.get("name") == "stderr":
            noise = stderr_noise(_text(o))
            if noise:
                problems.append(f"{where}: stderr: " + " | ".join(noise[:8]))
        elif kind in ("stream", "display_data", "execute_result") and _TRACEBACK.search(_text(o)):
            problems.append(f"{where}: traceback in output: {_text(o)[:600]}")
    return problems


def notebook_problems(nb) -> list[str]:
    """Every problem in an executed notebook: cell outputs, and the outputs captured by widget ``Output``s."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            problems += output_problems(cell.get("outputs", []), f"cell {i}")
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for model_id, model in state.items():
        if model.get("model_name") == "OutputModel":
            problems += output_problems(model.get("state", {}).get("outputs", []), f"Output widget {model_id}")
    return problems


@pytest.fixture(scope="session")
def output_checks() -> SimpleNamespace:
    """The checks of notebook outputs: ``output_problems(outputs, where)``, ``notebook_problems(nb)``,
    ``stderr_noise(text)`` and the ``STDERR_ALLOWED`` list."""
    return SimpleNamespace(output_problems=output_problems, notebook_problems=notebook_problems,
                           stderr_noise=stderr_noise, STDERR_ALLOWED=STDERR_ALLOWED)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """With ``-n 2 --dist loadgroup`` (``./dev test``): a test module without an ``xdist_group`` runs on one
    worker, so its module-scoped fixtures (a trained network, a simulated sample) are built once, not once on
    each worker (that cost ~1 min per suite run). Runs before pytest-xdist reads the marks."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))

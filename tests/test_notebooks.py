"""Notebooks: the jupytext ``.py`` sources agree with the ``.ipynb``; every notebook runs headless in FAST
mode within its time budget, with no error and no stderr noise; outputs are never committed.

The ``.py`` file (jupytext percent format) is the source that is edited and reviewed; the ``.ipynb`` is its
pair (``formats: ipynb,py:percent``), kept in sync by JupyterLab's jupytext extension or by
``jupytext --sync notebooks/NN_name.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
#: FAST-mode budget per notebook [s] (issue acceptance: tour < 3 min)
BUDGET = {"00_tour": 180, "01_cmd_quadtree_ann": 300, "02_membership_deepsets": 300, "03_sbi_masses_binaries": 300}


def test_notebooks_exist():
    assert any(p.stem == "00_tour" for p in NOTEBOOKS)
    assert any(p.stem == "00_tour" for p in SOURCES)


def test_every_notebook_has_its_source_and_vice_versa():
    ipynb, py = {p.stem for p in NOTEBOOKS}, {p.stem for p in SOURCES}
    pair = "jupytext --set-formats ipynb,py:percent notebooks/NAME.ipynb"
    assert not ipynb - py, f"notebooks without a .py source: {sorted(ipynb - py)} (pair them: {pair})"
    assert not py - ipynb, f".py sources without a notebook: {sorted(py - ipynb)} (jupytext --sync notebooks/NAME.py)"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_source_and_notebook_agree(source):
    """Same cells, same types, same sources: the pair is in sync (edit the .py, then `jupytext --sync`)."""
    jupytext = pytest.importorskip("jupytext")
    ipynb = source.with_suffix(".ipynb")
    if not ipynb.exists():
        pytest.fail(f"{source.name} has no {ipynb.name}; create it with `jupytext --sync {source.relative_to(ROOT)}`")
    text = jupytext.reads(source.read_text(), fmt="py:percent")
    nb = nbformat.read(ipynb, as_version=4)
    fix = f"edit {source.relative_to(ROOT)}, then run `jupytext --sync {source.relative_to(ROOT)}`"
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        f"{ipynb.name} is not paired with its .py source (metadata jupytext.formats); "
        f"run `jupytext --set-formats ipynb,py:percent {ipynb.relative_to(ROOT)}`")
    assert text.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        f"{source.name}: header must declare `formats: ipynb,py:percent`")
    py_cells = [(c.cell_type, c.source) for c in text.cells]
    nb_cells = [(c.cell_type, c.source) for c in nb.cells]
    for i, (a, b) in enumerate(zip(py_cells, nb_cells, strict=False)):
        if a != b:
            pytest.fail(f"cell {i} differs between {source.name} and {ipynb.name} ({a[0]} vs {b[0]}); {fix}\n"
                        f"--- .py\n{a[1][:400]}\n--- .ipynb\n{b[1][:400]}", pytrace=False)
    n_py, n_nb = len(py_cells), len(nb_cells)
    assert n_py == n_nb, f"{source.name} has {n_py} cells, {ipynb.name} {n_nb}; {fix}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state is committed; clear it"
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    for word in ("Data", "Runtime", "FAST"):
        assert word in first.source, f"{path.name}: header must state {word!r}"


def test_problem_finder_flags_errors_and_noise(output_checks):
    """The checker itself: an error, a traceback printed to stdout and TF/absl stderr lines are all flagged."""
    outs = [
        nbformat.v4.new_output("error", ename="ValueError", evalue="fill_color", traceback=[]),
        nbformat.v4.new_output("stream", name="stdout", text="Traceback (most recent call last):\n  x\n"),
        nbformat.v4.new_output("stream", name="stderr",
                               text="WARNING: All log messages before absl::InitializeLog() is called go to STDERR\n"),
        nbformat.v4.new_output("stream", name="stderr",
                               text="I0000 00:00:1.0 cpu_feature_guard.cc:210] oneDNN custom operations are on\n"),
        nbformat.v4.new_output("stream", name="stdout", text="fitted 12 clusters\n"),
    ]
    problems = output_checks.output_problems(outs, "cell 1")
    assert len(problems) == 4, problems
    assert "ValueError" in problems[0] and "absl" in problems[2] and "oneDNN" in problems[3]


@pytest.mark.notebook
# with pytest-xdist (-n 2 --dist loadgroup) the kernels of the notebook and browser tests run one at a time,
# on one worker, while the other worker runs the unit tests
@pytest.mark.xdist_group("jupyter")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless(path, artifacts_dir, output_checks):
    from nbclient import NotebookClient

    budget = BUDGET.get(path.stem, 300)
    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.get("OCNB_FAST")
    os.environ["OCNB_FAST"] = "1"
    try:
        client = NotebookClient(nb, timeout=budget, kernel_name="python3", store_widget_state=True,
                                resources={"metadata": {"path": str(path.parent)}})
        t0 = time.perf_counter()
        try:
            client.execute()
        finally:
            wall = time.perf_counter() - t0
            nbformat.write(nb, artifacts_dir / f"{path.stem}.executed.ipynb")
            (artifacts_dir / f"{path.stem}.runtime.txt").write_text(f"{wall:.1f} s\n")
    finally:
        if env_before is None:
            os.environ.pop("OCNB_FAST", None)
        else:
            os.environ["OCNB_FAST"] = env_before
    problems = output_checks.notebook_problems(nb)
    assert not problems, f"{path.name} (executed copy in test-artifacts/):\n" + "\n".join(problems)
    assert wall < budget, f"{path.name} took {wall:.0f} s in FAST mode (budget {budget} s)"

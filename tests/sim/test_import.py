"""ocnb.sim is a shared layer: it imports no paper module and does no work at import time."""

import subprocess
import sys
import textwrap


def test_import_is_light_and_independent_of_paper_modules(tmp_path, repo_root):
    code = textwrap.dedent("""
        import sys
        opened = []
        def hook(event, args):
            if event == "open" and isinstance(args[0], str) and not args[0].endswith(
                    (".py", ".pyc", ".so", ".pth", ".typed")) and "site-packages" not in args[0] \
                    and "__pycache__" not in args[0]:  # a .pyc written through a temporary name
                opened.append(args[0])
        sys.addaudithook(hook)
        import ocnb.sim
        import ocnb.sim.population, ocnb.sim.lattice, ocnb.sim.mass_function, ocnb.sim.quality
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "pymc", "pytensor",
                       "holoviews", "bokeh", "dustapprox", "astropy", "scipy"})
        paper = sorted(m for m in sys.modules if m.startswith(("ocnb.cmd_ann", "ocnb.panels", "benchmarks")))
        data = [p for p in opened if "ocnb" in p and "/ocnb/" in p.replace("\\\\", "/") and not p.endswith("/")]
        print(heavy, paper, data)
        assert not heavy and not paper and not data, (heavy, paper, data)
    """)
    env = {"PATH": "/usr/bin:/bin", "OCNB_DATA_DIR": str(tmp_path / "home")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=repo_root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not (tmp_path / "home").exists()  # nothing written to the data home

import subprocess
import sys

import pytest

import ocnb
from ocnb import config


def test_data_home_follows_env(tmp_data_home):
    assert config.data_home() == tmp_data_home
    assert tmp_data_home.is_dir()
    (tmp_data_home / "cache").mkdir()
    (tmp_data_home / "cache" / "x").write_text("1")
    config.clear_data_home("cache")
    assert not (tmp_data_home / "cache").exists() and tmp_data_home.exists()
    config.clear_data_home()
    assert not tmp_data_home.exists()


def test_fast_mode_env(monkeypatch):
    monkeypatch.setenv("OCNB_FAST", "0")
    assert not config.fast_mode()
    with config.fast():
        assert config.fast_mode()
    assert not config.fast_mode()
    monkeypatch.setenv("OCNB_FAST", "true")
    assert ocnb.fast_mode()


def test_unknown_keras_backend_is_rejected():
    with pytest.raises(ValueError, match="unknown Keras backend 'theano'"):
        config.set_keras_backend("theano")


def test_show_versions_reports_backend(capsys, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    info = ocnb.show_versions(as_dict=True)
    assert info["keras_backend"] == "jax"
    assert info["numpy"] and info["astropy"]
    ocnb.show_versions()
    assert "keras_backend: jax" in capsys.readouterr().out


def test_import_without_ui_stack():
    """`import ocnb` (and the data layer) must not pull in UI or ML packages."""
    code = (
        "import sys; import ocnb, ocnb.config, ocnb.cache, ocnb.errors\n"
        "heavy = [m for m in ('holoviews','bokeh','ipywidgets','datashader','tensorflow','keras','torch','jax','pymc')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_with_ui_stack_blocked():
    """Simulate a machine without the UI/ML stack: imports of those packages fail."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'holoviews','bokeh','ipywidgets','datashader','panel','tensorflow',\n"
        "                                   'keras','jupyterlab'}:\n"
        "            raise ImportError('blocked for the test: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ocnb\n"
        "ocnb.show_versions(as_dict=True)\n"
        "import ocnb.datasets, ocnb.isochrones, ocnb.photometry\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Training on each backend after ocnb.config.set_keras_backend: tests/ml/test_backends.py (jax, torch; the
# rest of the suite runs on tensorflow).


# ---------------------------------------------------------------------------
# Bad-input table: a data home that cannot be a folder -> DataHomeError naming OCNB_DATA_DIR and the path
# ---------------------------------------------------------------------------
# (id, make OCNB_DATA_DIR from tmp_path, regex)
DATA_HOMES = [
    ("a regular file", lambda p: (p / "file").write_text("x") and p / "file",
     r"data home .*file is a regular file, not a folder \(\$OCNB_DATA_DIR = '.*file'\)"),
    ("below a regular file", lambda p: (p / "file").write_text("x") and p / "file" / "sub",
     r"cannot create the ocnb data home .*file/sub: .*\$OCNB_DATA_DIR = '.*file/sub'"),
]


@pytest.mark.parametrize("name,make,pattern", DATA_HOMES, ids=[r[0] for r in DATA_HOMES])
def test_data_home_that_cannot_be_a_folder(tmp_path, monkeypatch, name, make, pattern):
    from ocnb.cache import Cache
    from ocnb.errors import DataHomeError

    monkeypatch.setenv("OCNB_DATA_DIR", str(make(tmp_path)))
    with pytest.raises(DataHomeError, match=pattern):
        config.data_home()
    with pytest.raises(DataHomeError, match=pattern):
        Cache("t").fetch_bytes("a.bin", lambda: b"never computed")
    assert isinstance(DataHomeError("x"), OSError)
    config.data_home(create=False)  # computing the path alone never raises (show_versions)
    assert "data_home" in ocnb.show_versions(as_dict=True)


def test_empty_data_dir_means_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("OCNB_DATA_DIR", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.data_home(create=False) == tmp_path / ".ocnb_data"
    assert "the default data home ~/.ocnb_data" in config.data_home_origin()

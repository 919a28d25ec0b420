"""ocnb.show_versions reports the distribution actually installed (tensorflow-cpu, tf-nightly ...)."""

from __future__ import annotations

from importlib import metadata

import pytest

import ocnb


def _fake_metadata(monkeypatch, installed: dict[str, str], provides: dict[str, list[str]]):
    def version(dist):
        if dist in installed:
            return installed[dist]
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(metadata, "packages_distributions", lambda: provides)


@pytest.mark.parametrize(
    ("installed", "provides", "expected"),
    [
        ({"tensorflow": "2.18.0"}, {}, "2.18.0"),
        ({"tensorflow-cpu": "2.21.0"}, {}, "2.21.0 (tensorflow-cpu)"),  # issue 13: was "-- not installed"
        ({"tf-nightly": "2.22.0.dev1"}, {}, "2.22.0.dev1 (tf-nightly)"),
        ({"tensorflow-rocm": "2.16.1"}, {"tensorflow": ["tensorflow-rocm"]}, "2.16.1 (tensorflow-rocm)"),  # scanned
        ({}, {}, None),
    ],
)
def test_tensorflow_variants(monkeypatch, installed, provides, expected):
    _fake_metadata(monkeypatch, installed, provides)
    assert ocnb.show_versions(as_dict=True)["tensorflow"] == expected


def test_printed_report_names_the_variant(monkeypatch, capsys):
    _fake_metadata(monkeypatch, {"tensorflow-cpu": "2.21.0", "numpy": "2.0.0"}, {})
    ocnb.show_versions()
    out = capsys.readouterr().out
    assert "tensorflow: 2.21.0 (tensorflow-cpu)" in out and "numpy: 2.0.0" in out
    assert "torch: -- not installed" in out


def test_real_environment_reports_the_backend_it_has():
    info = ocnb.show_versions(as_dict=True)
    # whatever distribution provides the tensorflow module here, it is reported
    if metadata.packages_distributions().get("tensorflow"):
        assert info["tensorflow"] is not None

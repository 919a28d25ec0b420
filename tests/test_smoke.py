def test_import():
    import ocnb
    assert ocnb.__version__

def test_help_lists_every_stage(cli):
    out = cli("--help").stdout
    for cmd in ["extract", "fit", "render", "dataset", "train", "enhance", "pipeline", "demo", "eval", "scene"]:
        assert cmd in out

"""``splatent eval`` as a user reads it: the line of mean PSNRs it prints."""

from __future__ import annotations

import re

import torch
from typer.testing import CliRunner

from splatent_cli.main import app


def test_a_mean_over_part_of_the_views_says_how_many(tmp_path):
    """An enhanced folder covering 1 of the 2 test views: the printed enhanced mean is over that one, and says so
    (the line said "over 2 views" for every number, comparing the enhanced mean of one view with the render's of two)."""
    from splatent_train.testing import SCENE_NAME, build_degraded_dataset

    torch.set_num_threads(1)
    build_degraded_dataset(tmp_path, n_views=16, width=64, height=48)
    renders = tmp_path / "renders" / SCENE_NAME
    enhanced = tmp_path / "enhanced_part"
    enhanced.mkdir()
    (enhanced / "0000.pt").write_bytes((renders / "nvs" / "0000.pt").read_bytes())
    res = CliRunner().invoke(app, ["eval", str(renders), "--enhanced", str(enhanced), "--output", str(tmp_path / "ev"),
                                   "--no-lpips", "--no-fid", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("mean PSNR over 2 views: "))
    assert re.search(r"enhanced \d+\.\d\d dB \(1 of the 2 views\)", line), line
    assert re.search(r"render \d+\.\d\d dB, ", line), line  # over every view: nothing added

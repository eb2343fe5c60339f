import json

import numpy as np
from PIL import Image


def _scene(tmp_path, n=4):
    from splatent_data import Camera, look_at, write_transforms

    cams = []
    for i in range(n):
        p = tmp_path / "images" / f"{i:02d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 12)).save(p)
        a = 2 * np.pi * i / n
        cams.append(Camera(p.name, p, 16, 12, 14.0, 14.0, 8.0, 6.0,
                           look_at([3 * np.cos(a), 3 * np.sin(a), 0.3], [0, 0, 0])))
    write_transforms(cams, tmp_path / "transforms.json")
    return cams


def test_inspect_json_on_fox(cli, fox):
    res = cli("scene", "inspect", fox, "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["images"] == 50 and info["missing"] == 17
    assert info["resolutions"] == {"1080x1920": 50} and info["camera_models"] == {"OPENCV": 50}
    assert "17 of 67 frames" in res.stderr


def test_inspect_strict_fox_fails_cleanly(cli, fox):
    res = cli("scene", "inspect", fox, "--strict")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("splatent scene inspect: 17 of 67 frames")


def test_bad_inputs_one_line_no_traceback(cli, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "transforms.json").write_text("{nope")
    for args in (["scene", "inspect", tmp_path / "missing"], ["scene", "inspect", tmp_path / "bad"]):
        res = cli(*args)
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("splatent scene inspect:")


def test_undistort_command(cli, tmp_path):
    _scene(tmp_path / "in")
    res = cli("scene", "undistort", tmp_path / "in", "--output", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "transforms.json").is_file()


def test_dataset_command_both_spellings(cli, tmp_path):
    cams = _scene(tmp_path / "scene", n=8)
    from splatent_data import RenderLayout

    renders = RenderLayout(tmp_path / "r")
    for folder, stems in (("nvs", ["00"]), ("nvs_gt", ["00"]), ("train_gt", [c.stem for c in cams[1:]])):
        renders.folder(folder).mkdir(parents=True)
        for s in stems:
            renders.latent(folder, s).write_bytes(b"x")
    out = tmp_path / "data.json"
    res = cli("dataset", "--out_path", tmp_path / "r", "--original_path", tmp_path / "scene",
              "--output", out, "--top_k", "2")
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert len(data["test"]["r_00"]["ref_features"]) == 2
    res = cli("dataset", "--out-path", tmp_path / "r", "--original-path", tmp_path / "scene",
              "--output", out, "--top-k", "0")
    assert res.returncode == 1 and res.stderr.strip() == "splatent dataset: --top_k must be at least 1, got 0"
    # more references than there are training views: capped, and the report says what the entries hold
    res = cli("dataset", "--out_path", tmp_path / "r", "--original_path", tmp_path / "scene", "--output", out,
              "--top_k", "1000")
    assert res.returncode == 0, res.stderr
    assert "top_k=7 (asked 1000; capped by the views available)" in res.stdout
    manifest = json.loads(out.with_name("data.manifest.json").read_text())
    assert manifest["top_k"] == 7 and manifest["top_k_requested"] == 1000


def test_inspect_llff_scene(cli, tmp_path):
    from splatent_data import write_llff

    cams = _scene(tmp_path, n=3)
    (tmp_path / "transforms.json").unlink()
    # poses_bounds.npy for the original 64x48 photos; the files beside it are 16x12
    write_llff([c.scaled(64, 48) for c in cams], tmp_path, bounds=(0.5, 12.0))
    res = cli("scene", "inspect", tmp_path, "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["format"] == "llff" and info["resolutions"] == {"16x12": 3}
    assert info["original_resolutions"] == {"64x48": 3} and info["near_far"] == {"near": [0.5, 0.5], "far": [12.0, 12.0]}
    res = cli("scene", "inspect", tmp_path)
    assert res.returncode == 0, res.stderr
    table = " ".join(res.stdout.replace("│", " ").split())  # cells wrap: join their lines
    assert "llff" in table and "describe the original photos (64x48)" in table and "near_far" in table


def test_photos_without_poses_point_to_sfm(cli, tmp_path):
    _scene(tmp_path, n=2)
    (tmp_path / "transforms.json").unlink()
    for args in ([], ["--json"]):
        res = cli("scene", "inspect", tmp_path, *args)
        assert res.returncode == 1 and "Traceback" not in res.stderr and res.stdout == ""
        assert len(res.stderr.strip().splitlines()) == 1
        assert "no poses found" in res.stderr and "poses_bounds.npy" in res.stderr
        assert f"splatent scene sfm {tmp_path / 'images'} --output" in res.stderr


def test_inspect_colmap_scene_reports_unregistered_photos(cli, tmp_path):
    from splatent_data import write_colmap

    cams = _scene(tmp_path, n=6)
    (tmp_path / "transforms.json").unlink()
    write_colmap(cams[:4], tmp_path / "sparse" / "0")  # as SfM leaves 2 of 6 photos out
    res = cli("scene", "inspect", tmp_path, "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert (info["format"], info["images"], info["missing"], info["unregistered"]) == ("colmap", 4, 0, 2)
    assert info["unregistered_names"] == ["04.png", "05.png"]
    res = cli("scene", "inspect", tmp_path)
    assert res.returncode == 0, res.stderr
    table = " ".join(res.stdout.replace("│", " ").split())
    assert "unregistered 2 of 6 photos" in table and 'unregistered_names ["04.png", "05.png"]' in table


def test_sfm_matcher_choices(cli, tmp_path):
    _scene(tmp_path, n=2)
    res = cli("scene", "sfm", tmp_path / "images", "--output", tmp_path / "out", "--matcher", "fast")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip() == ("splatent scene sfm: unknown matcher 'fast'; "
                                  "use one of auto, sequential, exhaustive")
    import inspect

    from splatent_cli.commands.scene import sfm

    option = inspect.signature(sfm).parameters["matcher"].default
    assert option.default == "auto" and option.param_decls == ("--matcher",)
    assert option.help.startswith("auto (exhaustive up to 200 photos, else sequential)")

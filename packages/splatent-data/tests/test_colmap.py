import numpy as np
import pytest

from splatent_data import PointCloud, SceneError, load_scene, write_colmap, write_transforms


def _same(a, b):
    assert [c.name for c in a] == [c.name for c in b]
    for x, y in zip(a, b):
        assert (x.width, x.height, x.model) == (y.width, y.height, y.model)
        assert np.allclose([x.fx, x.fy, x.cx, x.cy], [y.fx, y.fy, y.cx, y.cy], atol=1e-6)
        assert np.allclose(x.distortion, y.distortion, atol=1e-6)
        assert np.allclose(x.camtoworld, y.camtoworld, atol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_colmap_and_transforms_give_the_same_cameras(tmp_path, make_ring, binary):
    cams = make_ring(tmp_path, n=8, model="OPENCV", distortion=(0.02, -0.01, 0.001, -0.002))
    pts = PointCloud(np.random.default_rng(0).normal(size=(50, 3)), np.full((50, 3), 7, np.uint8))
    write_colmap(cams, tmp_path / "sparse" / "0", pts, binary=binary)
    write_transforms(cams, tmp_path / "poses" / "transforms.json")
    from_colmap = load_scene(tmp_path, fmt="colmap")
    from_nerf = load_scene(tmp_path / "poses" / "transforms.json")
    assert from_colmap.format == "colmap" and from_nerf.format == "transforms"
    _same(from_colmap.cameras, cams)
    _same(from_nerf.cameras, from_colmap.cameras)
    assert len(from_colmap.points) == 50 and np.allclose(from_colmap.points.xyz, pts.xyz)
    assert (from_colmap.points.rgb == 7).all()


@pytest.mark.parametrize("model,params", [
    ("SIMPLE_PINHOLE", [30.0, 20.0, 15.0]),
    ("PINHOLE", [30.0, 31.0, 20.0, 15.0]),
    ("SIMPLE_RADIAL", [30.0, 20.0, 15.0, 0.01]),
    ("RADIAL", [30.0, 20.0, 15.0, 0.01, -0.002]),
    ("OPENCV", [30.0, 31.0, 20.0, 15.0, 0.01, -0.002, 0.001, 0.0]),
])
def test_colmap_camera_models(tmp_path, make_ring, model, params):
    import pycolmap

    cam = make_ring(tmp_path, n=1)[0]
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(model=model, width=40, height=30, params=params, camera_id=1))
    rec.add_image_with_trivial_frame(pycolmap.Image(name=cam.name, camera_id=1, image_id=1),
                                     pycolmap.Rigid3d(cam.worldtocam[:3, :4]))
    (tmp_path / "sparse").mkdir()
    rec.write_text(str(tmp_path / "sparse"))
    got = load_scene(tmp_path).cameras[0]
    assert got.fx == params[0] and got.cx == 20.0 and got.cy == 15.0
    assert got.fy == (31.0 if model in ("PINHOLE", "OPENCV") else 30.0)
    assert len(got.distortion) == {"SIMPLE_PINHOLE": 0, "PINHOLE": 0, "SIMPLE_RADIAL": 1, "RADIAL": 2, "OPENCV": 4}[model]


def test_old_layout_without_rigs_and_frames(tmp_path, make_ring):
    cams = make_ring(tmp_path, n=3)
    write_colmap(cams, tmp_path / "sparse" / "0", binary=False)
    model = tmp_path / "sparse" / "0"
    for name in ("rigs.txt", "frames.txt"):
        (model / name).unlink()
    # pycolmap 4 writes the new images.txt; the old one has the same columns, so removing
    # the rig/frame files is exactly the pre-3.12 layout.
    _same(load_scene(tmp_path).cameras, cams)


def test_nerfstudio_layout_reads_the_images_beside_colmap(tmp_path, make_ring):
    """ns-process-data writes SCENE/colmap/sparse/0 and SCENE/images: the photos are the scene's, not colmap/'s."""
    cams = make_ring(tmp_path, n=4)
    write_colmap(cams, tmp_path / "colmap" / "sparse" / "0")
    for source in (tmp_path, tmp_path / "colmap" / "sparse" / "0"):
        scene = load_scene(source)
        assert scene.format == "colmap" and len(scene) == 4 and scene.root == tmp_path
        assert scene.cameras[0].image_path == tmp_path / "images" / "0000.png"


def test_images_4_scaling_for_colmap(tmp_path, make_ring):
    from PIL import Image

    cams = make_ring(tmp_path, n=2, size=(80, 60))
    write_colmap(cams, tmp_path / "sparse" / "0")
    (tmp_path / "images_4").mkdir()
    for c in cams:
        Image.new("RGB", (20, 15)).save(tmp_path / "images_4" / c.name)
    got = load_scene(tmp_path, images="images_4").cameras[0]
    assert (got.width, got.fx, got.cx) == (20, cams[0].fx / 4, cams[0].cx / 4)


def test_incomplete_model_names_the_missing_file(tmp_path, make_ring):
    write_colmap(make_ring(tmp_path, n=2), tmp_path / "sparse" / "0")
    (tmp_path / "sparse" / "0" / "points3D.bin").unlink()
    with pytest.raises(SceneError, match="lacks points3D.bin"):
        load_scene(tmp_path)


def test_model_without_registered_images(tmp_path, make_ring):
    import pycolmap

    make_ring(tmp_path, n=1)
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(model="PINHOLE", width=40, height=30,
                                                    params=[30, 30, 20, 15], camera_id=1))
    (tmp_path / "sparse" / "0").mkdir(parents=True)
    rec.write_binary(str(tmp_path / "sparse" / "0"))
    with pytest.raises(SceneError, match="no registered images"):
        load_scene(tmp_path)


def test_corrupt_model_file(tmp_path, make_ring):
    write_colmap(make_ring(tmp_path, n=2), tmp_path / "sparse" / "0")
    (tmp_path / "sparse" / "0" / "images.bin").write_bytes(b"\x05garbage")
    with pytest.raises(SceneError, match="cannot read COLMAP model"):
        load_scene(tmp_path)


def test_photos_the_model_does_not_register_are_listed(tmp_path, make_ring):
    cams = make_ring(tmp_path, n=8)
    write_colmap(cams[:5], tmp_path / "sparse" / "0")  # as SfM would leave 3 photos out
    scene = load_scene(tmp_path)
    assert len(scene) == 5 and scene.missing == []
    assert scene.unregistered == [c.name for c in cams[5:]]
    cams[0].image_path.unlink()  # listed without a file: missing, not unregistered
    scene = load_scene(tmp_path)
    assert scene.missing == [cams[0].name] and scene.unregistered == [c.name for c in cams[5:]]
    write_transforms(cams[:5], tmp_path / "transforms.json")
    assert load_scene(tmp_path).unregistered is None  # only COLMAP scenes are checked


def test_a_colmap_rig_with_one_name_per_camera_folder_loads_and_gathers_into_one_folder(tmp_path, make_ring):
    """A rig's model names images cam0/0000.png and cam1/0000.png: both are found, keyed apart by their folder."""
    import dataclasses as dc

    from splatent_data import undistort_scene

    cams = []
    for rig in ("cam0", "cam1"):
        ring = make_ring(tmp_path, n=3, folder=f"images/{rig}", model="OPENCV", distortion=(0.02, 0.0, 0.0, 0.0))
        cams += [dc.replace(c, name=f"{rig}/{c.name}") for c in ring]
    write_colmap(cams, tmp_path / "sparse" / "0")
    scene = load_scene(tmp_path)
    assert scene.names == [f"{rig}_{i:04d}.png" for rig in ("cam0", "cam1") for i in range(3)]
    assert scene.camera("cam1_0002").image_path == tmp_path / "images" / "cam1" / "0002.png"
    assert len(scene.image_folders) == 2 and scene.needs_working_copy
    copy = undistort_scene(scene, tmp_path / "copy")
    assert copy.stems == scene.stems and copy.image_folders == [tmp_path / "copy" / "images"] and copy.is_pinhole

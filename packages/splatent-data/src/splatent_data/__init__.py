"""splatent-data: scenes, cameras, splits and camera-aware reference selection.

Every input format becomes a :class:`Scene` of :class:`Camera` objects in one
convention (OpenCV axes, camera-to-world, corner pixel convention). No torch.
"""

from .camera import DISTORTION_PARAMS, Camera, look_at, opengl_to_opencv
from .colmap import parse_colmap, write_colmap
from .dataset_json import (
    DEFAULT_PROMPT, DatasetEntry, DatasetSpec, build_dataset, dataset_manifest_path, read_dataset_json, render_image_folder,
    render_protocol, resolve_image_path, scene_protocols, write_dataset_json,
)
from .errors import DatasetFormatError, SceneError, SplatentError
from .fileio import atomic_write_bytes, atomic_write_json
from .layout import RENDER_FOLDERS, RenderLayout, RunLayout
from .images import (
    IMAGE_EXTENSIONS, IMAGE_EXTENSIONS_TEXT, IMAGE_READ_ERRORS, find_image, image_read_error, image_stem,
    latent_image_mismatch, list_images, load_mask, load_rgb, read_image_size, view_order,
    save_rgb,
)
from .llff import find_poses_bounds, parse_llff, write_llff
from .loading import SCENE_FORMATS, find_poses, load_scene
from .nerf import parse_transforms, write_transforms
from .points_ply import read_points_ply, write_points_ply
from .provenance import provenance
from .scene import PointCloud, Scene
from .references import camera_radius, reference_scores, select_references
from .sfm import SfmResult, run_sfm
from .splits import (
    PROTOCOL_VIEWS, PROTOCOLS, SPLIT_MODES, SceneSplit, Split, benchmark_scene_names, furthest_point_views, llff_split, protocol_split, read_split_file,
    scene_test_views, split_scene, split_scene_names,
)
from .summary import scene_summary
from .synthetic import make_synthetic_scene, render_synthetic, ring_of_cameras, synthetic_points
from .undistort import undistort_image, undistort_scene, undistorted_camera

__version__ = "0.5.0"

__all__ = [
    "Camera", "DEFAULT_PROMPT", "DISTORTION_PARAMS", "DatasetEntry", "DatasetFormatError", "DatasetSpec",
    "IMAGE_EXTENSIONS", "IMAGE_EXTENSIONS_TEXT", "IMAGE_READ_ERRORS", "image_read_error", "image_stem", "latent_image_mismatch", "view_order", "provenance", "PointCloud", "RENDER_FOLDERS", "RenderLayout", "RunLayout", "SCENE_FORMATS", "Scene", "SceneError", "Split", "SplatentError", "atomic_write_bytes",
    "atomic_write_json", "build_dataset", "dataset_manifest_path", "render_image_folder", "render_protocol", "scene_protocols", "camera_radius", "find_image", "find_poses_bounds", "furthest_point_views", "PROTOCOLS", "PROTOCOL_VIEWS", "SPLIT_MODES", "protocol_split", "SceneSplit", "benchmark_scene_names", "split_scene_names",
    "list_images", "llff_split",
    "find_poses", "load_mask", "load_rgb", "load_scene", "look_at", "make_synthetic_scene", "render_synthetic", "ring_of_cameras",
    "opengl_to_opencv", "parse_colmap", "parse_llff", "parse_transforms", "read_dataset_json", "read_image_size",
    "read_points_ply", "read_split_file", "reference_scores", "run_sfm", "SfmResult", "resolve_image_path",
    "save_rgb", "scene_summary", "scene_test_views", "select_references", "split_scene", "synthetic_points", "undistort_image", "undistorted_camera",
    "undistort_scene", "write_colmap", "write_dataset_json", "write_llff", "write_points_ply", "write_transforms",
]

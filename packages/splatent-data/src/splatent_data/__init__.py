"""splatent-data: scenes, cameras, splits and camera-aware reference selection.

Every input format becomes a :class:`Scene` of :class:`Camera` objects in one
convention (OpenCV axes, camera-to-world, corner pixel convention). No torch.
"""

from .camera import DISTORTION_PARAMS, Camera, look_at, opengl_to_opencv
from .colmap import parse_colmap, write_colmap
from .errors import DatasetFormatError, SceneError, SplatentError
from .fileio import atomic_write_bytes, atomic_write_json
from .images import IMAGE_EXTENSIONS, find_image, list_images, load_rgb, read_image_size, save_rgb
from .nerf import parse_transforms, write_transforms
from .scene import PointCloud, Scene, load_scene
from .splits import Split, llff_split, split_scene

__version__ = "0.1.0"

__all__ = [
    "Camera", "DISTORTION_PARAMS", "DatasetFormatError", "IMAGE_EXTENSIONS", "PointCloud", "Scene",
    "SceneError", "Split", "SplatentError", "atomic_write_bytes", "atomic_write_json", "find_image",
    "list_images", "llff_split", "load_rgb", "load_scene", "look_at", "opengl_to_opencv", "parse_colmap",
    "parse_transforms", "read_image_size", "save_rgb", "split_scene", "write_colmap", "write_transforms",
]

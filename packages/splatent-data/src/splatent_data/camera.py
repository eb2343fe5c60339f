"""One camera type for every input format.

Convention (the only one used downstream of the parsers):

* ``camtoworld`` is a 4x4 camera-to-world matrix in the **OpenCV** camera frame:
  x right, y down, z forward (the viewing direction).
* Pixel coordinates put the image's top-left *corner* at (0, 0), so the centre of
  pixel (i, j) is (i + 0.5, j + 0.5), as in COLMAP and NeRF ray generation. With
  this convention, resizing an image by ``s`` maps ``(fx, fy, cx, cy)`` to
  ``s * (fx, fy, cx, cy)`` exactly.
* Distortion follows COLMAP's model names and parameter order (without the focal
  length and principal point, which live in ``fx, fy, cx, cy``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import image_stem

# COLMAP model name -> names of the distortion parameters, in COLMAP's order.
DISTORTION_PARAMS: dict[str, tuple[str, ...]] = {
    "PINHOLE": (),
    "SIMPLE_RADIAL": ("k1",),
    "RADIAL": ("k1", "k2"),
    "OPENCV": ("k1", "k2", "p1", "p2"),
    "FULL_OPENCV": ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
    "OPENCV_FISHEYE": ("k1", "k2", "k3", "k4"),
}


@dataclass(frozen=True)
class Camera:
    """A posed, calibrated image.

    Attributes:
        name: Image file name relative to the scene's image folder (``0001.jpg``).
        image_path: Absolute path of the image file.
        width, height: Size in pixels of ``image_path``.
        fx, fy, cx, cy: Pinhole intrinsics in pixels (corner convention, see module doc).
        model: Distortion model, one of :data:`DISTORTION_PARAMS`.
        distortion: Distortion parameters in the order of ``DISTORTION_PARAMS[model]``.
        camtoworld: ``[4, 4]`` camera-to-world, OpenCV axes.
        mask_path: Absolute path of the image's mask (nerfstudio's ``mask_path``: 0 where pixels are left out of
            the fit), or ``None``; any size of the image's aspect ratio (:func:`~splatent_data.images.load_mask`).
    """

    name: str
    image_path: Path
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    camtoworld: np.ndarray = field(repr=False)
    model: str = "PINHOLE"
    distortion: tuple[float, ...] = ()
    mask_path: Path | None = None

    def __post_init__(self) -> None:
        if self.model not in DISTORTION_PARAMS:
            raise ValueError(f"unknown camera model {self.model!r}")
        if len(self.distortion) != len(DISTORTION_PARAMS[self.model]):
            raise ValueError(
                f"{self.model} takes {len(DISTORTION_PARAMS[self.model])} distortion parameters, "
                f"got {len(self.distortion)}"
            )
        c2w = np.asarray(self.camtoworld, dtype=np.float64)
        if c2w.shape != (4, 4):
            raise ValueError(f"camtoworld must be 4x4, got {c2w.shape}")
        object.__setattr__(self, "camtoworld", c2w)

    @property
    def stem(self) -> str:
        """File name without extension: the key that latents and renders share. Only an image extension is one:
        a pose file naming ``frame.0001`` (no extension) keys ``frame.0001``, as its image ``frame.0001.png`` does."""
        return image_stem(self.name)

    @property
    def K(self) -> np.ndarray:
        """``[3, 3]`` intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def worldtocam(self) -> np.ndarray:
        """``[4, 4]`` world-to-camera (OpenCV axes)."""
        return np.linalg.inv(self.camtoworld)

    @property
    def center(self) -> np.ndarray:
        """``[3]`` camera centre in world coordinates."""
        return self.camtoworld[:3, 3].copy()

    @property
    def forward(self) -> np.ndarray:
        """``[3]`` unit viewing direction (the camera's +z axis) in world coordinates."""
        z = self.camtoworld[:3, 2]
        return z / np.linalg.norm(z)

    @property
    def is_pinhole(self) -> bool:
        """True when the camera has no (non-zero) distortion."""
        return not any(abs(p) > 0.0 for p in self.distortion)

    def scaled(self, width: int, height: int) -> "Camera":
        """The same camera for the image resized to ``width x height`` pixels."""
        sx, sy = width / self.width, height / self.height
        return dataclasses.replace(
            self, width=width, height=height,
            fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
        )

    def with_image(self, image_path: Path, name: str | None = None) -> "Camera":
        """The same camera reading another file (e.g. an undistorted copy)."""
        return dataclasses.replace(self, image_path=Path(image_path), name=name or self.name)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points with the pinhole model (distortion ignored).

        Args:
            points: ``[N, 3]`` world coordinates.

        Returns:
            ``([N, 2]`` pixel coordinates, ``[N]`` depths along +z).
        """
        pts = np.asarray(points, dtype=np.float64)
        w2c = self.worldtocam
        cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
        depth = cam[:, 2]
        uv = cam[:, :2] / depth[:, None]
        pix = np.stack([self.fx * uv[:, 0] + self.cx, self.fy * uv[:, 1] + self.cy], axis=-1)
        return pix, depth


# The OpenGL/Blender camera (x right, y up, z backward) differs from OpenCV's by a
# flip of the y and z axes; the same matrix maps either way.
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def opengl_to_opencv(camtoworld: np.ndarray) -> np.ndarray:
    """Convert a ``[4, 4]`` OpenGL camera-to-world to OpenCV axes (and back)."""
    return np.asarray(camtoworld, dtype=np.float64) @ OPENGL_TO_OPENCV


def look_at(center: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """``[4, 4]`` OpenCV camera-to-world at ``center`` looking at ``target`` with world ``up``."""
    center = np.asarray(center, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - center
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, center
    return c2w

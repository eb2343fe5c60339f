"""Sparse points as a PLY file: nerfstudio's ``sparse_pc.ply`` beside a ``transforms.json``.

nerfstudio's ``ns-process-data`` writes the COLMAP points, already in the frame of the
poses, as a binary PLY with ``x y z`` and ``red green blue`` vertex properties and names
it in ``transforms.json`` under ``ply_file_path``; 3DGS trainers initialise from it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .errors import SceneError
from .fileio import atomic_write_bytes
from .scene import PointCloud


def read_points_ply(path: str | Path) -> PointCloud:
    """The vertices of a PLY file as a :class:`PointCloud` (``rgb`` is ``None`` without colour)."""
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: the point cloud named by the scene does not exist")
    try:
        vertex = PlyData.read(str(path))["vertex"]
    except Exception as exc:  # plyfile raises several types for a malformed header or body
        raise SceneError(f"{path}: not a readable PLY point cloud ({exc})") from None
    names = vertex.data.dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise SceneError(f"{path}: the PLY vertices have no x, y, z properties")
    xyz = np.stack([vertex[k] for k in "xyz"], axis=1).astype(np.float64)
    if not np.isfinite(xyz).all():
        raise SceneError(f"{path}: the point cloud has non-finite coordinates")
    rgb = None
    if {"red", "green", "blue"} <= set(names):
        rgb = np.stack([vertex[k] for k in ("red", "green", "blue")], axis=1).clip(0, 255).astype(np.uint8)
    return PointCloud(xyz=xyz, rgb=rgb)


def write_points_ply(path: str | Path, points: PointCloud) -> None:
    """Write ``points`` as a binary PLY (float ``x y z``, uchar ``red green blue``), atomically."""
    from plyfile import PlyData, PlyElement

    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if points.rgb is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    data = np.empty(len(points), dtype=fields)
    for i, axis in enumerate("xyz"):
        data[axis] = points.xyz[:, i]
    if points.rgb is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            data[channel] = points.rgb[:, i]
    buffer = io.BytesIO()
    PlyData([PlyElement.describe(data, "vertex")], text=False).write(buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())

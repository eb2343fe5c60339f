"""Grid attention layout: the target and its references tiled into one latent.

The UNet sees ``V = 1 + k`` views as a single ``rows × cols`` image, so every
self-attention layer attends across all of them. Views fill the grid row by row,
the target (view 0) top-left; this is the original's layout, which its trained
checkpoints depend on.
"""

from __future__ import annotations

from torch import Tensor

from .errors import EnhanceInputError


def grid_shape(num_views: int) -> tuple[int, int]:
    """``(rows, cols)`` for ``num_views`` tiles: ``cols = (V + 1) // 2`` (1 for V = 1), ``rows = V / cols``.

    V = 1 → 1×1, 2 → 2×1, 4 → 2×2, 6 → 2×3. A V that makes no rectangle (3, 5, 7, ...)
    is refused, as in the original.
    """
    if num_views < 1:
        raise EnhanceInputError(f"grid attention needs at least one view, got {num_views}")
    cols = (num_views + 1) // 2 if num_views > 1 else 1
    rows = -(-num_views // cols)
    if rows * cols != num_views:
        raise EnhanceInputError(
            f"grid attention needs 1 + top_k views that tile a rectangle (1, 2, 4, 6, 8, ... views); "
            f"got {num_views} (top_k={num_views - 1}); use top_k 1, 3 or 5")
    return rows, cols


def tile_views(views: Tensor) -> Tensor:
    """Tile views into one grid latent.

    Args:
        views: ``[B, V, C, h, w]``, view 0 the target.

    Returns:
        ``[B, C, rows*h, cols*w]``.
    """
    b, v, c, h, w = views.shape
    rows, cols = grid_shape(v)
    return views.reshape(b, rows, cols, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, rows * h, cols * w)


def untile_views(grid: Tensor, num_views: int) -> Tensor:
    """Cut a grid latent back into its views (the inverse of :func:`tile_views`).

    Args:
        grid: ``[B, C, rows*h, cols*w]``.
        num_views: ``V``.

    Returns:
        ``[B, V, C, h, w]``.
    """
    b, c, gh, gw = grid.shape
    rows, cols = grid_shape(num_views)
    h, w = gh // rows, gw // cols
    return grid.reshape(b, c, rows, h, cols, w).permute(0, 2, 4, 1, 3, 5).reshape(b, num_views, c, h, w)

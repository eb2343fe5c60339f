from __future__ import annotations

import pytest
import torch

from splatent_model import EnhanceInputError, grid_shape, tile_views, untile_views


@pytest.mark.parametrize("views, shape", [(1, (1, 1)), (2, (2, 1)), (4, (2, 2)), (6, (2, 3)), (8, (2, 4))])
def test_grid_shape_follows_the_original(views, shape):
    assert grid_shape(views) == shape


@pytest.mark.parametrize("views", [3, 5, 7, 0])
def test_views_that_tile_no_rectangle_are_refused(views):
    with pytest.raises(EnhanceInputError, match="rectangle|at least one"):
        grid_shape(views)


@pytest.mark.parametrize("views", [1, 2, 4, 6])
def test_untile_inverts_tile_exactly(views):
    x = torch.randn(3, views, 4, 5, 7)
    grid = tile_views(x)
    rows, cols = grid_shape(views)
    assert grid.shape == (3, 4, rows * 5, cols * 7)
    assert torch.equal(untile_views(grid, views), x)
    assert torch.equal(tile_views(untile_views(grid, views)), grid)


def test_views_fill_rows_first_with_the_target_top_left():
    x = torch.arange(4.0).view(1, 4, 1, 1, 1).expand(1, 4, 1, 2, 2)
    grid = tile_views(x)[0, 0]
    assert grid.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


def test_two_views_stack_vertically():
    x = torch.stack([torch.zeros(1, 2, 3), torch.ones(1, 2, 3)])[None]  # [1, 2, 1, 2, 3]
    grid = tile_views(x)
    assert grid.shape == (1, 1, 4, 3)
    assert grid[0, 0, :2].eq(0).all() and grid[0, 0, 2:].eq(1).all()

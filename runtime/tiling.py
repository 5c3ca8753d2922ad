"""How the CPU kernels of a factored tensor (Adafactor's) cut it into parallel tiles.

A factored tensor is a stack of matrices, its last two dimensions (R rows by C columns). Its
loop nests run over tiles of whole rows: several whole matrices to a tile where they are small,
a block of one matrix's rows where it is large. Tiles follow from the shape alone, so the sums
over them add in the same order, and give the same bits, on any number of threads.
"""

from __future__ import annotations

#: Elements per tile of the element passes (their per-tile sums: the reductions' block).
PASS_TILE = 4096
#: Elements per tile of the factored stage; a larger matrix is split into blocks of rows ...
AXIS_TILE = 65536
#: ... at most this many (each block keeps its own column sums, added in order after).
AXIS_SPLIT = 16
#: Rows shorter than this are not looped along: the innermost loop runs across the tile's
#: matrices (a convolution kernel's 3x3 or 1x1 rows would spend their time starting loops).
ACROSS_BELOW = 16


def tiling(shape: tuple[int, ...], tile: int, most_blocks: int | None = None) -> tuple:
    """How a factored tensor of ``shape`` is cut into parallel tiles: ``(rows, cols,
    matrices per tile, tiles per matrix, rows per tile, across)``. Matrices of at most
    ``tile`` elements go whole, ``tile // (R*C)`` to a tile (``across``: the innermost loop
    runs across them, where rows are shorter than ``ACROSS_BELOW``); a larger one is cut into
    blocks of ``tile // C`` rows (at least one), at most ``most_blocks`` of them."""
    rows, cols = shape[-2], shape[-1]
    if rows * cols <= tile:
        per_tile = max(1, tile // (rows * cols))
        return rows, cols, per_tile, 1, rows, per_tile > 1 and cols < ACROSS_BELOW
    block = max(1, tile // cols)
    blocks = -(-rows // block)
    if most_blocks is not None and blocks > most_blocks:
        block = -(-rows // most_blocks)
        blocks = -(-rows // block)
    return rows, cols, 1, blocks, block, False


def tile_count(size: int, tiles: tuple) -> int:
    """The number of tiles of a tensor of ``size`` elements cut by :func:`tiling`."""
    rows, cols, per_tile, per_matrix = tiles[:4]
    matrices = size // (rows * cols)
    return -(-matrices // per_tile) * per_matrix

"""The automatic chunk rule: 512 x 512 tiles in 2D, 64^3 bricks in 3D (z, y and x slices equally cheap)."""

from __future__ import annotations

import math

TILE_2D = 512
BRICK_3D = 64
MAX_EDGE = 1024


def auto_chunks(storage_shape: tuple[int, ...], storage_axes: str, colour: bool) -> tuple[int, ...]:
    """Chunk shape in storage order.

    2D: 512 x 512 (about 256 KiB of uint8: large enough for JPEG XL to compress well, small enough that a viewer
    decodes only what is on screen). 3D: 64^3 bricks (the same voxel budget); an axis shorter than its edge gives
    its share to the others. Colour channels share one chunk (colour JPEG XL); other channels get one chunk each.
    """
    spatial = [i for i, a in enumerate(storage_axes) if a != "c"]
    edge = TILE_2D if len(spatial) == 2 else BRICK_3D
    budget = edge ** len(spatial)
    sizes = {i: storage_shape[i] for i in spatial}
    chunk: dict[int, int] = {}
    free = list(spatial)
    # Axes shorter than the fair share take their full size; the rest split what remains of the budget.
    while free:
        share = (budget / math.prod(chunk.values() or [1])) ** (1 / len(free))
        short = [i for i in free if sizes[i] <= share]
        if not short:
            for i in free:
                chunk[i] = min(sizes[i], MAX_EDGE, max(1, round(share)))
            break
        for i in short:
            chunk[i] = sizes[i]
            free.remove(i)
    out = []
    for i, a in enumerate(storage_axes):
        out.append((storage_shape[i] if colour else 1) if a == "c" else max(1, chunk[i]))
    return tuple(out)

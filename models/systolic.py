"""Golden model of the weight-stationary systolic array (hw/systolic.py), cycle-free and bit-exact.

The array holds one R x C int8 weight tile ``W`` (rows along the reduction dimension K, columns
along the output channels N). Every int8 activation vector ``a[R]`` streamed in yields one
partial-sum vector ``psum[C] = a @ W`` (exact: |psum| <= R * 2**14, so int32 never overflows).
Weight tiles and activation vectors come as two streams; an activation beat with ``last`` set is the
final one using the current tile, after which the next loaded tile is used.
"""

from __future__ import annotations

import numpy as np

from hw.config import Config

__all__ = ["psums", "run_stream"]


def psums(a, w) -> np.ndarray:
    """Partial sums ``a[M, R] @ w[R, C]`` as int32 (the array's output for one weight tile)."""
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    return (a @ w).astype(np.int32)


def run_stream(config: Config, weight_rows, act_beats) -> list[tuple[list[int], bool]]:
    """Model the array's streams beat for beat.

    ``weight_rows``: sequence of C-lists (R consecutive rows form one tile, row 0 first).
    ``act_beats``: sequence of ``(a[R], last)``. Returns the psum_out beats ``(psum[C], last)`` in
    order.
    """
    R, C = config.array_rows, config.array_cols
    rows = np.asarray(list(weight_rows), dtype=np.int64).reshape(-1, C)
    if len(rows) % R:
        raise ValueError("weight stream must hold whole tiles of array_rows rows")
    tiles = rows.reshape(-1, R, C)
    out, t = [], 0
    for a, last in act_beats:
        if t >= len(tiles):
            raise ValueError("activation stream uses more weight tiles than were supplied")
        p = psums(np.asarray(a, dtype=np.int64).reshape(1, R), tiles[t])[0]
        out.append(([int(v) for v in p], bool(last)))
        t += bool(last)
    return out

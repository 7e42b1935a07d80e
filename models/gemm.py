"""Golden model of the GEMM engine (hw/gemm.py): int8 GEMM + per-channel requant, cycle-free,
bit-exact.

``gemm`` is the arithmetic: ``Y[M, N] = requant(A[M, K] @ W[K, N], bias, mult, shift, zp, qmin,
qmax)`` with int32 (wrap-around) accumulation, exactly TFLite's FULLY_CONNECTED / CONV_2D (after
im2col) once the input zero point is folded into the bias (:func:`fold_input_zero_point`).

``streams`` is the engine's wire format: the beats its ``cmd``, ``params``, ``wgt`` and ``act``
streams expect and the beats ``out`` produces, in order. The loop nest is (outermost first) N tiles
of C columns, M blocks of :func:`hw.gemm.m_block` rows, K tiles of R rows; zero padding fills
partial tiles, padded channels get zero bias/multiplier/shift so their (ignored) output lanes are
``clamp(zp)``.

Raw mode (``raw=True``, the engine's ``cmd.raw``): the requant is bypassed and the outputs are
:func:`gemm_raw`, ``wrap32(A @ W + bias)`` per channel (int32; padded channels 0).
"""

from __future__ import annotations

import numpy as np

from hw.config import Config
from hw.gemm import m_block
from models.arith import wrap_int32
from models.requant import requant

__all__ = ["accumulate", "gemm", "gemm_raw", "fold_input_zero_point", "streams", "tiles"]


def accumulate(a, w) -> np.ndarray:
    """int32 (wrap-around) ``a[M, K] @ w[K, N]``."""
    prod = np.asarray(a, dtype=np.int64) @ np.asarray(w, dtype=np.int64)
    return wrap_int32(prod).astype(np.int32)


def gemm(a, w, bias, mult, shift, zero_point: int, qmin: int = -128, qmax: int = 127) -> np.ndarray:
    """int8 ``Y[M, N]`` of the engine for int8 ``a[M, K]``, int8 ``w[K, N]`` and per-channel
    params."""
    return requant(accumulate(a, w), bias, mult, shift, zero_point, qmin, qmax)


def gemm_raw(a, w, bias) -> np.ndarray:
    """int32 ``Y[M, N] = wrap32(a @ w + bias)``: the engine's raw mode (requant bypassed)."""
    acc = accumulate(a, w).astype(np.int64) + np.asarray(bias, dtype=np.int64).reshape(1, -1)
    return wrap_int32(acc).astype(np.int32)


def fold_input_zero_point(bias, w, input_zero_point: int) -> np.ndarray:
    """Bias with the input zero point folded in: ``bias - zp_in * sum_k W[k, n]`` (int32 wrap).

    TFLite computes ``sum (a - zp_in) * w + bias``; the engine computes ``sum a * w + bias'``; both
    are equal modulo 2**32, i.e. bit-exact in int32. Padding taps must be fed as ``zp_in`` (not 0).
    """
    w = np.asarray(w, dtype=np.int64)
    return wrap_int32(np.asarray(bias, dtype=np.int64) - int(input_zero_point) * w.sum(axis=0)) \
        .astype(np.int32)


def tiles(config: Config, m: int, k: int, n: int) -> dict:
    """Tile counts of an M x K x N GEMM on ``config``: m_block, k_tiles, n_tiles, m_blocks."""
    R, C = config.array_rows, config.array_cols
    mb = m_block(config)
    return {"m_block": mb, "k_tiles": -(-k // R), "n_tiles": -(-n // C), "m_blocks": -(-m // mb)}


def _pad(x, rows: int, cols: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    out = np.zeros((rows, cols), dtype=np.int64)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def streams(config: Config, a, w, bias, mult, shift, zero_point: int, qmin: int = -128,
            qmax: int = 127, raw: bool = False) -> dict:
    """All stream beats of one GEMM on the engine, in order.

    Returns ``{"cmd": dict, "params": [dict], "wgt": [list C], "act": [list R],
    "out": [(list C, last)]}``; the out lists are the int8 ``data`` lanes, or with ``raw`` the
    int32 ``acc`` lanes (:func:`gemm_raw`).
    """
    R, C = config.array_rows, config.array_cols
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    M, K = a.shape
    K2, N = w.shape
    if K != K2:
        raise ValueError(f"inner dimensions differ: A is {a.shape}, W is {w.shape}")
    t = tiles(config, M, K, N)
    KT, NT, MB = t["k_tiles"], t["n_tiles"], t["m_block"]
    ap = _pad(a, M, KT * R)
    wp = _pad(w, KT * R, NT * C)
    bp = _pad(np.asarray(bias).reshape(1, -1), 1, NT * C)[0]
    mp = _pad(np.asarray(mult).reshape(1, -1), 1, NT * C)[0]
    sp = _pad(np.asarray(shift).reshape(1, -1), 1, NT * C)[0]
    if raw:
        y = gemm_raw(ap, wp, bp).astype(np.int64)
    else:
        y = gemm(ap, wp, bp, mp, sp, zero_point, qmin, qmax).astype(np.int64)
    out = {"cmd": {"m": M, "k_tiles": KT, "n_tiles": NT, "zp": int(zero_point),
                   "qmin": int(qmin), "qmax": int(qmax), "raw": int(bool(raw))},
           "params": [], "wgt": [], "act": [], "out": []}
    for nt in range(NT):
        cols = slice(nt * C, (nt + 1) * C)
        out["params"].append({"bias": bp[cols].tolist(), "mult": mp[cols].tolist(),
                              "shift": sp[cols].tolist()})
        for m0 in range(0, M, MB):
            rows = range(m0, min(M, m0 + MB))
            for kt in range(KT):
                out["wgt"] += wp[kt * R:(kt + 1) * R, cols].tolist()
                out["act"] += [ap[m, kt * R:(kt + 1) * R].tolist() for m in rows]
            out["out"] += [(y[m, cols].tolist(), False) for m in rows]
    out["out"][-1] = (out["out"][-1][0], True)
    return out

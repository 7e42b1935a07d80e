"""Golden int8 kernels: TFLM reference arithmetic, vectorized NumPy.

Registry contract: a kernel module decorates a *prepare* function with ``@kernel("OP_NAME")``.
``prepare(op, graph)`` runs once per op when a model is loaded (compute requant multipliers, reshape
weights, ...) and returns ``fn(inputs: list[np.ndarray | None]) -> list[np.ndarray]``, called per
inference with the op's input values in ``op.inputs`` order (constants included, ``None`` for absent
optional inputs) and returning the output values in ``op.outputs`` order, with exactly the output
tensors' shapes and dtypes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from hw.errors import UserError

__all__ = ["kernel", "get_prepare", "supported_ops", "KERNEL_MODULES"]

_REGISTRY: dict[str, Callable] = {}

#: Modules holding kernels; imported lazily on first lookup.
KERNEL_MODULES = [
    "models.kernels.conv",
    "models.kernels.shape",
    "models.kernels.pool",
    "models.kernels.quant",
    "models.kernels.elementwise",
    "models.kernels.nonlinear",
]
_loaded = False


def kernel(name: str):
    def deco(fn):
        if name in _REGISTRY:
            raise RuntimeError(f"kernel {name} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def _load():
    global _loaded
    if not _loaded:
        for mod in KERNEL_MODULES:
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name != mod:
                    raise
        _loaded = True


def supported_ops() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def get_prepare(name: str) -> Callable:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(
            f"unsupported op {name}: logicdie supports {', '.join(sorted(_REGISTRY))}"
        ) from None

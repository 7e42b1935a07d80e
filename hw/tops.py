"""Registry of the generated top-level designs, for `make lint`, `logicdie synth --top` and the
harness.

Each entry maps a top name to ``"module:factory"``; ``factory(config)`` returns an Amaranth
``wiring.Component`` with flat, plainly named ports. Imported lazily so hw/ modules stay
independent.
"""

from __future__ import annotations

import importlib

from hw.config import Config
from hw.errors import UserError

__all__ = ["TOPS", "build_top"]

TOPS: dict[str, str] = {
    "gemm": "hw.gemm:top",
    "pixel": "hw.pixel_top:top",      # CSI-2 RX + ISP
    "npu": "hw.npu:top",              # NPU: SRAM, fetch/queues, LOAD/STORE, conv + vector units
    "soc": "hw.soc:top",              # the logic die: RX, ISP, tensor writer, NPU, metadata TX
    # one NPU unit alone (its own Fmax and area: `logicdie synth --top conv|vector`)
    "conv": "hw.conv_unit:top",       # conv unit: act gather, GEMM engine, requants, scatter
    "vector": "hw.vector:top",        # depthwise / vector unit
}


def build_top(name: str, config: Config):
    try:
        target = TOPS[name]
    except KeyError:
        raise UserError(
            f"unknown top {name!r}; choose one of {', '.join(TOPS) or '(none yet)'}"
        ) from None
    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)(config)

"""The oracle: TFLite Micro's reference interpreter (PyPI ``tflite-micro``), wrapped.

Every backend (golden, ISA simulator, RTL) is compared with :class:`TflmReference` element for
element. Contract: construction either succeeds or raises :class:`UserError` carrying TFLM's own
first log line (TFLM's C++ logging to stderr is captured, never passed through); the arena is sized
from the model's tensors unless given.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile

import numpy as np

from hw.errors import UserError

__all__ = ["TflmReference", "arena_size"]


def arena_size(model: bytes) -> int:
    """A TFLM arena surely large enough: every tensor's bytes twice plus 64 KiB of bookkeeping.

    (tflite-micro's default, 10x the model's size, is too small for models whose activations
    dwarf their weights.)
    """
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    sizes = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    item = {"INT8": 1, "UINT8": 1, "BOOL": 1, "INT16": 2, "FLOAT16": 2, "INT32": 4, "FLOAT32": 4,
            "INT64": 8, "FLOAT64": 8}
    sg = fb.Model.GetRootAsModel(bytes(model), 0).Subgraphs(0)
    total = 0
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        total += math.prod(t.ShapeAsNumpy().tolist() if t.ShapeLength() else [1]) * item.get(
            sizes.get(t.Type(), ""), 8)
    return 2 * total + (64 << 10)


@contextlib.contextmanager
def _captured_stderr(lines: list[str], tmp=None):
    """Capture file descriptor 2 (TFLM's C++ logging) into ``lines`` (via ``tmp`` if given)."""
    sys.stderr.flush()
    own = tmp is None
    tmp = tempfile.TemporaryFile(mode="w+b") if own else tmp
    tmp.seek(0)
    tmp.truncate()
    saved = os.dup(2)
    os.dup2(tmp.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if tmp.tell():
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            lines.extend(ln for ln in text.splitlines() if ln.strip())
        if own:
            tmp.close()


class TflmReference:
    """One TFLM interpreter for one model. ``run(inputs)`` returns the outputs (copies)."""

    def __init__(self, model: bytes, arena_size: int | None = None):
        from tflite_micro.python.tflite_micro import runtime
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

        model = bytes(model)
        size = arena_size if arena_size is not None else globals()["arena_size"](model)
        log: list[str] = []
        try:
            with _captured_stderr(log):
                self._it = runtime.Interpreter.from_bytes(model, arena_size=size)
        except Exception as e:  # TFLM raises RuntimeError; its reason is in its log
            reason = log[0] if log else (str(e).splitlines()[0] if str(e) else type(e).__name__)
            raise UserError(f"TFLM reference interpreter rejected the model: {reason}") from None
        sg = fb.Model.GetRootAsModel(model, 0).Subgraphs(0)
        self.n_inputs = sg.InputsLength()
        self.n_outputs = sg.OutputsLength()
        self._log = tempfile.TemporaryFile(mode="w+b")

    def input_details(self, i: int = 0) -> dict:
        return self._it.get_input_details(i)

    def output_details(self, i: int = 0) -> dict:
        return self._it.get_output_details(i)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        for i, x in enumerate(inputs):
            self._it.set_input(np.ascontiguousarray(x), i)
        log: list[str] = []
        try:
            with _captured_stderr(log, self._log):
                self._it.invoke()
        except Exception as e:
            reason = log[0] if log else (str(e).splitlines()[0] if str(e) else type(e).__name__)
            raise UserError(f"TFLM reference interpreter failed: {reason}") from None
        return [np.array(self._it.get_output(i), copy=True) for i in range(self.n_outputs)]

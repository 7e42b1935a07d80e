"""The oracle: TFLite Micro's reference interpreter (PyPI ``tflite-micro``), wrapped.

Every backend (golden, ISA simulator, RTL) is compared with :class:`TflmReference` element for
element.
"""

from __future__ import annotations

import numpy as np

from hw.errors import UserError

__all__ = ["TflmReference"]


class TflmReference:
    """One TFLM interpreter for one model. ``run(inputs)`` returns the outputs (copies)."""

    def __init__(self, model: bytes, arena_size: int | None = None):
        from tflite_micro.python.tflite_micro import runtime

        kwargs = {} if arena_size is None else {"arena_size": arena_size}
        try:
            self._it = runtime.Interpreter.from_bytes(bytes(model), **kwargs)
        except Exception as e:  # TFLM raises RuntimeError with its own log
            raise UserError(
                f"TFLM reference interpreter rejected the model: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from None
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

        sg = fb.Model.GetRootAsModel(bytes(model), 0).Subgraphs(0)
        self.n_inputs = sg.InputsLength()
        self.n_outputs = sg.OutputsLength()

    def input_details(self, i: int = 0) -> dict:
        return self._it.get_input_details(i)

    def output_details(self, i: int = 0) -> dict:
        return self._it.get_output_details(i)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        for i, x in enumerate(inputs):
            self._it.set_input(np.ascontiguousarray(x), i)
        self._it.invoke()
        return [np.array(self._it.get_output(i), copy=True) for i in range(self.n_outputs)]

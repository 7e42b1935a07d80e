"""``logicdie check``: a backend against the TFLM reference interpreter on random inputs (SPEC
section 8).

Given a bundle instead of a model, the bundle (validated on load, see :mod:`sw.bundle`) runs on
the backend against the golden run of the graph it carries.

Exit 0 iff every output element of every input is equal. Inputs are uniform over int8 for int8
inputs and, for a float input, uniform over the real range its QUANTIZE op represents.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from hw.config import preset
from hw.errors import UserError
from sw.cli import add_common, positive_int, seed_int

BACKENDS = ("golden", "isa", "rtl")


def register(sub):
    p = sub.add_parser(
        "check",
        help="compare a backend with the TFLM reference on random inputs",
        description="Run N random inputs through a backend and through the TFLite Micro "
        "reference interpreter; exit 0 iff every output element is equal.",
    )
    p.add_argument("model", help="TFLite int8 model (.tflite), or a bundle (checked against "
                   "the golden run of the model it carries)")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="golden",
        help="golden (NumPy graph), isa (ISA simulator), rtl (Verilator)",
    )
    p.add_argument("--inputs", type=positive_int, default=10, metavar="N",
                   help="random inputs (default 10)")
    p.add_argument("--seed", type=seed_int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--config",
        default="default",
        metavar="PRESET",
        help="hardware preset for isa/rtl (default, ecp5, ice40, tiny)",
    )
    add_common(p)
    p.set_defaults(func=run)


def random_inputs(graph, rng: np.random.Generator) -> list[np.ndarray]:
    """One random input set: uniform int8, or uniform over a float input's QUANTIZE range."""
    xs = []
    for idx in graph.inputs:
        t = graph.tensors[idx]
        if t.dtype == "int8":
            xs.append(rng.integers(-128, 128, size=t.shape, dtype=np.int8))
        elif t.dtype == "float32":
            q = next(
                (
                    graph.tensors[op.outputs[0]].quant
                    for op in graph.ops
                    if op.kind == "QUANTIZE" and op.inputs[0] == idx
                ),
                None,
            )
            if q is None:
                raise UserError(
                    f"float input '{t.name}' is not followed by a QUANTIZE op; "
                    "give an int8-quantized model"
                )
            scale, zp = float(q.scale[0]), int(q.zero_point[0])
            lo, hi = scale * (-128 - zp), scale * (127 - zp)
            xs.append(rng.uniform(lo, hi, size=t.shape).astype(np.float32))
        else:
            raise UserError(
                f"input '{t.name}' has type {t.dtype}; logicdie checks int8 or "
                "float32 (quantized in-graph) inputs"
            )
    return xs


def _backend(name, graph, config):
    if name == "golden":
        from models.golden import GoldenModel

        return GoldenModel(graph)
    try:
        from sw.runtime import make_backend
    except ImportError:
        raise UserError(f"backend {name} is not available in this build") from None
    return make_backend(name, graph, config)


class _Golden:
    """The golden run of a bundle's graph, as the reference."""

    def __init__(self, graph):
        from models.golden import GoldenModel

        self.model = GoldenModel(graph)

    def run(self, xs):
        return self.model.run(xs)


def _bundle_backend(name, compiled, graph):
    if name == "golden":
        from models.golden import GoldenModel

        return GoldenModel(graph)
    from sw.runtime import IsaBackend, RtlBackend

    return (IsaBackend if name == "isa" else RtlBackend)(compiled)


def run(args):
    from sw.bundle import from_bytes, is_bundle
    from sw.tflite_import import load_tflite, read_model_bytes

    config = preset(args.config)
    data = read_model_bytes(args.model)
    label = Path(args.model).name
    if is_bundle(data):
        # a bundle: its program against the golden run of the graph it carries
        compiled, graph = from_bytes(data, label, with_graph=True)
        if args.config != "default" and compiled.config != config:
            raise UserError(f"bundle {label} was compiled for preset '{compiled.config.name}'; "
                            f"drop --config or recompile it with --config {config.name}")
        config = compiled.config
        backend = _bundle_backend(args.backend, compiled, graph)
        guard = ref = _Golden(graph)
        reference = "golden"
    else:
        from models.golden import GoldenModel
        from models.tflm_ref import TflmReference

        graph = load_tflite(data, name=label)
        backend = _backend(args.backend, graph, config)
        # TFLM aborts the whole process (uncatchable SIGABRT) on a few quantization corner
        # cases (e.g. an ADD output scale below 2*max(s1, s2)/2^20, a softmax sum of
        # exponentials reaching 512); the golden model raises a UserError for each, so it runs
        # before the reference on every input as a guard.
        guard = backend if args.backend == "golden" else GoldenModel(graph)
        ref = TflmReference(data)
        reference = "tflm"
    rng = np.random.default_rng(args.seed)
    mismatched = 0
    compared = 0
    first_bad = None
    cycles = []
    t_backend = t_ref = 0.0
    from tqdm import tqdm

    for k in tqdm(
        range(args.inputs),
        desc=f"check {args.backend}",
        unit="input",
        file=sys.stderr,
        disable=not sys.stderr.isatty() or args.inputs < 5,
    ):
        xs = random_inputs(graph, rng)
        t0 = time.perf_counter()
        got = backend.run(xs)
        if guard is not backend and guard is not ref:
            guard.run(xs)
        t1 = time.perf_counter()
        want = ref.run(xs)
        t_ref += time.perf_counter() - t1
        t_backend += t1 - t0
        if getattr(backend, "last_cycles", None) is not None:
            cycles.append(int(backend.last_cycles))
        for o, (g, w) in enumerate(zip(got, want, strict=True)):
            g = np.asarray(g).reshape(w.shape)
            bad = int(np.count_nonzero(g != w)) if g.dtype == w.dtype else w.size
            compared += w.size
            mismatched += bad
            if bad and first_bad is None:
                first_bad = f"input {k}, output {o}: {bad} of {w.size} elements differ"
    macs = graph.macs()
    out = {
        "model": str(args.model),
        "backend": args.backend,
        "reference": reference,
        "config": config.name,
        "inputs": args.inputs,
        "seed": args.seed,
        "bit_exact": mismatched == 0,
        "mismatched_elements": mismatched,
        "compared_elements": compared,
        "macs": macs,
        "backend_ms_per_inference": 1e3 * t_backend / args.inputs,
        "reference_ms_per_inference": 1e3 * t_ref / args.inputs,
    }
    if args.backend != "golden":
        cyc = int(round(float(np.mean(cycles)))) if cycles else None
        out["cycles"] = cyc
        out["utilization"] = (macs / (cyc * config.pes)) if cyc else None
    if getattr(backend, "last_counters", None):
        # the RTL's performance counters of the last inference (cycles per unit, stalls, MACs)
        out["counters"] = {k: int(v) for k, v in backend.last_counters.items()}
    if first_bad:
        out["first_mismatch"] = first_bad
    if not args.json:
        verdict = "BIT-EXACT" if out["bit_exact"] else "MISMATCH"
        print(
            f"{verdict}: {out['model']} on {args.backend} ({config.name}) vs "
            f"{'TFLM reference' if reference == 'tflm' else 'its golden run'}, "
            f"{args.inputs} inputs, {mismatched} of {compared} elements differ"
        )
        print(
            f"  MACs/inference {macs:,}; {args.backend} {out['backend_ms_per_inference']:.2f} ms, "
            f"{reference} {out['reference_ms_per_inference']:.2f} ms per inference"
        )
        if "cycles" in out and out["cycles"]:
            print(f"  cycles/inference {out['cycles']:,}; utilization {out['utilization']:.1%}")
        if first_bad:
            print(f"  first mismatch: {first_bad}")
    return (0 if out["bit_exact"] else 1), out

"""Benchmarks for `logicdie bench` (SPEC section 9): figures, never pass/fail.

Contract: each module ``sw.benchmarks.<name>`` listed in :data:`BENCHMARKS` defines
``run(quick: bool) -> dict`` returning JSON-serialisable figures (times in seconds or ms with the
unit in the key name, e.g. ``golden_ms_per_inference``). ``quick`` selects small sizes for smoke
tests.
"""

BENCHMARKS = ["golden", "gemm", "pixel", "isa", "rtl", "soc"]

"""The golden kernels' fast requantization equals the reference formulation (models.arith.mbqm)."""

import numpy as np
import pytest

from models.arith import quantize_multiplier
from models.kernels.common import Requant, requant


@pytest.mark.parametrize("channels", [1, 3, 8, 64])
@pytest.mark.parametrize("seed", range(4))
def test_fast_requant_equals_reference(channels, seed):
    rng = np.random.default_rng(seed * 100 + channels)
    reals = np.exp(rng.uniform(np.log(1e-7), np.log(0.999), channels))
    if seed == 3:  # effective scales >= 1 take the left-shift path
        reals = reals * 40
    ms = [quantize_multiplier(float(r)) for r in reals]
    mult = np.array([m for m, _ in ms])
    shift = np.array([s for _, s in ms])
    acc = rng.integers(-(1 << 31), (1 << 31) - 1, size=(2, 5, 7, channels), endpoint=True)
    acc[0, 0, 0, :] = -(1 << 31)
    acc[0, 0, 1, :] = (1 << 31) - 1
    zp = int(rng.integers(-128, 128))
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
    fast = Requant(mult, shift, zp, lo, hi)
    np.testing.assert_array_equal(fast(acc), requant(acc, mult, shift, zp, lo, hi))

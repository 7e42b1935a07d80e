"""The host side of the logic die without the RTL (sw/soc.py): SRAM layout, the staging-copy
programs (run on the ISA simulator), and the golden die's frame rules."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hw.errors import UserError
from hw.isa import Opcode, decode_program
from hw.metadata import MetaFlag
from models.golden import GoldenModel
from sim.isa_sim import IsaSim
from sw.cli.run import corrupt_frame
from sw.compiler import compile_graph
from sw.runtime import Device, make_backend
from sw.soc import GoldenSocTransport, soc_image, soc_layout, soc_programs
from tests.hw.test_soc import MODE, photos, small_rgb_net


@pytest.fixture(scope="module")
def compiled():
    return compile_graph(small_rgb_net(), "tiny")


def test_layout_above_the_model_and_refused_when_too_small(compiled):
    lay = soc_layout(compiled)
    n = compiled.inputs[0].nbytes
    spans = sorted([(lay.stage[0], n), (lay.stage[1], n), (lay.table, 32)]
                   + [(a, len(p)) for a, p in zip(lay.prog, soc_programs(compiled, lay.stage),
                                                  strict=True)])
    assert spans[0][0] >= compiled.memory["total_bytes"]
    assert all(a + k <= b for (a, k), (b, _) in zip(spans[:-1], spans[1:], strict=True))
    assert lay.end <= compiled.config.sram_bytes
    small = dataclasses.replace(compiled, config=compiled.config.replace(
        sram_bytes=compiled.memory["total_bytes"] + 64, sram_banks=1, sram_word_bytes=64))
    with pytest.raises(UserError, match="bytes of SRAM"):
        soc_layout(small)


def test_staging_programs_on_the_isa_simulator(compiled):
    """Each program copies its staging buffer into the model's input, then runs the model: on the
    ISA simulator its outputs equal the golden model's for a tensor placed only in the staging
    buffer."""
    lay = soc_layout(compiled)
    golden = GoldenModel(small_rgb_net())
    d = compiled.inputs[0]
    rng = np.random.default_rng(1)
    for k, prog in enumerate(soc_programs(compiled, lay.stage)):
        instrs = decode_program(prog)
        assert instrs[0]["opcode"] == Opcode.COPY and instrs[0]["src_addr"] == lay.stage[k]
        assert any(i["opcode"] == Opcode.SYNC for i in instrs[:3])
        x = rng.integers(-128, 128, d.shape, dtype=np.int8)
        sim = IsaSim(compiled.config, prog, soc_image(compiled, lay))
        sim.reset()
        sim.write(lay.stage[k], x)
        sim.run()
        got = [sim.read(o.addr, o.shape, o.dtype) for o in compiled.outputs]
        be = make_backend("golden", small_rgb_net(), "tiny")
        want = be.finish(got)
        assert all(np.array_equal(a, b) for a, b in zip(want, golden.run([x]), strict=True))


def test_golden_die_frame_rules(compiled):
    """One metadata frame per closed input frame with a continuous counter; a flagged frame has
    RX_ERROR and no tensors; a frame split over two feeds is closed once; the budget rule uses
    cycles_total; the golden and isa NPUs give the same bytes for the same KPI."""
    dev = Device(small_rgb_net(), backend="golden", config="tiny", sensor_mode=MODE)
    setup = dev._setup()
    g = GoldenSocTransport(setup, make_backend("golden", small_rgb_net(), "tiny"))
    i = GoldenSocTransport(setup, make_backend("isa", small_rgb_net(), "tiny"))
    frames = [dev.sensor_frame(im) for im in photos(3)]
    frames[1] = corrupt_frame(frames[1])
    kpi = {"cycles_isp": 5, "cycles_npu": 7, "cycles_total": 100, "cycles_tx": 3}
    out_g, out_i = [], []
    for f in frames:
        half = len(f) // 2
        out_g += g.process(f[:half]) + g.process(f[half:], [kpi])
        out_i += i.process(f, [kpi])
    assert out_g == out_i and len(out_g) == 3
    from models.metadata import parse_stream

    parsed = [parse_stream(b)[0].metadata for b in out_g]
    assert [m.frame_counter for m in parsed] == [0, 1, 2]
    assert [m.flags for m in parsed] == [MetaFlag.VALID, MetaFlag.RX_ERROR, MetaFlag.VALID]
    assert parsed[1].tensors == [] and len(parsed[0].tensors) == len(compiled.outputs)
    late = GoldenSocTransport(dataclasses.replace(setup, budget=99), g.backend)
    md = parse_stream(late.process(frames[0], [kpi])[0])[0].metadata
    assert md.flags == MetaFlag.TIMEOUT and md.tensors == []
    ok = GoldenSocTransport(dataclasses.replace(setup, budget=100), g.backend)
    assert parse_stream(ok.process(frames[0], [kpi])[0])[0].metadata.valid

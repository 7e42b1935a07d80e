"""The functional ISA simulator against the golden graph (itself bit-exact with TFLM):
person_detect, random multi-layer models from the TFLite writer, MobileNetV2-shaped networks;
program checks (deadlock, hazards) and cycle-model properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hw.config import preset
from hw.isa import BufSel, Opcode, Timing
from models.golden import GoldenModel
from models.tflite_writer import ModelBuilder
from sim.isa_sim import IsaSim, SimError, instr_cost, schedule
from sw.compiler import compile_graph
from sw.runtime import IsaBackend
from sw.tflite_import import load_tflite
from tests.models.corner_models import ZP_WRAP_OPS, assert_zp_wrap_equals_tflm

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"


def _inputs(graph, rng, float_range=(-3, 3)):
    """Random inputs for every graph input: uniform int8, or uniform floats in ``float_range``."""
    xs = []
    for t in graph.input_tensors():
        if t.dtype == "int8":
            xs.append(rng.integers(-128, 128, size=t.shape, dtype=np.int8))
        else:
            xs.append(rng.uniform(*float_range, size=t.shape).astype(np.float32))
    return xs


def _assert_exact(graph, config, inputs_list):
    isa = IsaBackend(compile_graph(graph, config))
    gold = GoldenModel(graph)
    for xs in inputs_list:
        got, want = isa.run(xs), gold.run(xs)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            assert np.array_equal(g, w), f"{np.count_nonzero(g != w)} of {w.size} differ"
    return isa


@pytest.fixture(scope="module")
def person_detect():
    return load_tflite(ZOO / "person_detect.tflite")


@pytest.mark.parametrize("config", ["default", "tiny"])
def test_person_detect_bmps_and_random(person_detect, config):
    rng = np.random.default_rng(0)
    xs = [
        [np.asarray(Image.open(ZOO / f)).view(np.int8).reshape(1, 96, 96, 1)]
        for f in ("person.bmp", "no_person.bmp")
    ]
    xs += [_inputs(person_detect, rng) for _ in range(6)]
    isa = _assert_exact(person_detect, config, xs)
    assert isa.last_cycles > 0
    st = isa.last_stats
    assert sum(r["cycles"] for r in st["layers"]) == st["cycles"]


# ------------------------------------------------------------------------------ random models
def _conv_out_scale(in_scale, k, rng):
    return float(in_scale * np.sqrt(k) * rng.uniform(0.1, 0.4))


def random_model(seed: int) -> bytes:
    """A random multi-layer int8 network exercising every lowering path of the compiler."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder(name=f"rand{seed}")
    h, w = int(rng.integers(5, 17)), int(rng.integers(5, 17))
    c = int(rng.integers(1, 9))
    s = float(rng.uniform(0.02, 0.1))
    x = b.input((1, h, w, c), "int8", s, int(rng.choice([-128, 127, int(rng.integers(-128, 128))])))
    acts = ["NONE", "RELU", "RELU6"]
    n_layers = int(rng.integers(3, 7))
    for _ in range(n_layers):
        kind = rng.choice(
            ["conv", "dw", "padconv", "residual", "pool", "unary", "concat", "mulch", "resize"]
        )
        cur_s, cur_z = x.qparams
        ci = x.shape[3]
        if kind in ("conv", "padconv"):
            k = int(rng.choice([1, 3, 5]))
            co = int(rng.integers(1, 40))
            stride = int(rng.choice([1, 2]))
            if kind == "padconv":
                p = [int(v) for v in rng.integers(0, 3, size=4)]
                x = b.pad(x, [[0, 0], [p[0], p[1]], [p[2], p[3]], [0, 0]])
            if min(x.shape[1], x.shape[2]) < k:  # VALID needs the kernel to fit
                k = 1
            wt = b.weights(rng.normal(size=(co, k, k, ci)), axis=0)
            x = b.conv2d(
                x,
                wt,
                bias=rng.normal(size=co) * 0.5,
                stride=stride,
                padding="VALID" if kind == "padconv" or rng.random() < 0.3 else "SAME",
                activation=str(rng.choice(acts)),
                out_scale=_conv_out_scale(cur_s, k * k * ci, rng),
                out_zp=int(rng.integers(-128, 128)),
            )
        elif kind == "dw":
            k = int(rng.choice([3, 5]))
            m = int(rng.choice([1, 1, 2]))
            wt = b.depthwise_weights(rng.normal(size=(1, k, k, ci * m)))
            x = b.depthwise_conv2d(
                x,
                wt,
                bias=rng.normal(size=ci * m),
                stride=int(rng.choice([1, 2])),
                padding=str(rng.choice(["SAME", "VALID"]))
                if x.shape[1] >= k and x.shape[2] >= k
                else "SAME",
                activation=str(rng.choice(acts)),
                out_scale=_conv_out_scale(cur_s, k * k, rng),
                out_zp=int(rng.integers(-128, 128)),
            )
        elif kind == "residual":
            wt = b.weights(rng.normal(size=(ci, 1, 1, ci)), axis=0)
            y = b.conv2d(x, wt, out_scale=_conv_out_scale(cur_s, ci, rng), out_zp=0)
            x = b.add(
                x,
                y,
                activation=str(rng.choice(acts)),
                out_scale=float(cur_s * rng.uniform(1, 2)),
                out_zp=int(rng.integers(-20, 20)),
            )
        elif kind == "pool":
            f = int(rng.choice([2, 3]))
            st = int(rng.choice([1, 2]))
            pool = b.average_pool2d if rng.random() < 0.5 else b.max_pool2d
            x = pool(x, filter=f, stride=st, padding="SAME")
        elif kind == "unary":
            op = rng.choice(["relu6", "relu", "leaky", "hswish", "quant"])
            if op == "relu6":
                x = b.relu6(x)
            elif op == "relu":
                x = b.relu(x, out_scale=float(cur_s * rng.uniform(0.5, 2)), out_zp=-128)
            elif op == "leaky":
                x = b.leaky_relu(x, alpha=float(rng.uniform(0.05, 0.3)))
            elif op == "hswish":
                x = b.hard_swish(
                    x,
                    out_scale=float(cur_s * rng.uniform(0.8, 1.5)),
                    out_zp=int(rng.integers(-128, 0)),
                )
            else:
                x = b.quantize(x, float(cur_s * rng.uniform(0.5, 2)), int(rng.integers(-128, 128)))
        elif kind == "concat":
            wt = b.weights(rng.normal(size=(int(rng.integers(1, 9)), 1, 1, ci)), axis=0)
            y = b.conv2d(x, wt, out_scale=cur_s, out_zp=cur_z)
            x = b.concatenation([x, y], axis=-1)
        elif kind == "mulch":
            g = b.const(rng.integers(-128, 128, size=(1, 1, 1, ci)), "int8", 0.01, 0)
            x = b.mul(x, g, out_scale=float(cur_s * 0.5), out_zp=int(rng.integers(-10, 10)))
        elif kind == "resize" and x.shape[1] <= 12:
            x = b.resize_nearest_neighbor(
                x, (x.shape[1] * 2, x.shape[2] * 2), half_pixel_centers=bool(rng.random() < 0.5)
            )
    tail = rng.choice(["mean_fc", "fc_softmax", "plain"])
    if tail == "mean_fc":
        x = b.mean(x, [1, 2], keep_dims=True, out_scale=x.qparams[0], out_zp=x.qparams[1])
        x = b.reshape(x, (1, x.shape[3]))
        wt = b.weights(rng.normal(size=(10, x.shape[1])), axis=None)
        x = b.fully_connected(x, wt, bias=rng.normal(size=10), out_scale=0.1, out_zp=0)
    elif tail == "fc_softmax":
        x = b.reshape(x, (1, -1))
        wt = b.weights(rng.normal(size=(5, x.shape[1])), axis=None)
        x = b.fully_connected(
            x, wt, out_scale=_conv_out_scale(x.qparams[0], x.shape[1], rng), out_zp=0
        )
        x = b.softmax(x)
    b.output(x)
    return b.finish()


@pytest.mark.parametrize("seed", range(16))
def test_random_models_bit_exact(seed):
    g = load_tflite(random_model(seed), name=f"rand{seed}")
    rng = np.random.default_rng(100 + seed)
    config = "tiny" if seed % 2 else "default"
    isa = _assert_exact(g, config, [_inputs(g, rng) for _ in range(3)])
    # every compute op of these models is lowered to the NPU (no host fallback)
    assert not isa.compiled.host_calls, isa.compiled.warnings


def test_mobilenet_v2_shaped_bit_exact():
    from models.zoo.generate import mobilenet_v2_like

    g = load_tflite(mobilenet_v2_like(input_hw=(64, 64), alpha=0.35, num_classes=10, seed=1))
    rng = np.random.default_rng(2)
    isa = _assert_exact(g, "default", [_inputs(g, rng) for _ in range(2)])
    assert not isa.compiled.host_calls
    kinds = {layer.kind for layer in isa.compiled.layers}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD"} <= kinds


def test_host_fallback_op_mid_graph_bit_exact():
    rng = np.random.default_rng(4)
    b = ModelBuilder()
    x = b.input((1, 6, 8, 4), "int8", 0.05, 3)
    wt = b.weights(rng.normal(size=(6, 3, 3, 4)), axis=0)
    y = b.conv2d(x, wt, out_scale=0.2, out_zp=-5)
    y = b.softmax(y)  # SOFTMAX mid-graph: host call
    wt2 = b.weights(rng.normal(size=(5, 1, 1, 6)), axis=0)
    y = b.conv2d(y, wt2, out_scale=0.3, out_zp=1)
    b.output(y)
    g = load_tflite(b.finish())
    isa = _assert_exact(g, "default", [_inputs(g, rng) for _ in range(3)])
    assert [g.ops[k].kind for c in isa.compiled.host_calls for k in c["ops"]] == ["SOFTMAX"]


# ------------------------------------------------------------------------------ program checks
def _tiny_program(extra_flags: dict):
    cfg = preset("tiny")
    load = {
        "opcode": Opcode.LOAD,
        "buf": BufSel.WBUF,
        "slot": 0,
        "sram_addr": 0,
        "nbytes": 16,
        "push_next": 1,
        "pop_next": 0,
        "pop_prev": 0,
        "push_prev": 0,
    }
    conv = {
        "opcode": Opcode.CONV,
        "in_addr": 64,
        "out_addr": 128,
        "in_h": 2,
        "in_w": 2,
        "in_c": 4,
        "out_h": 2,
        "out_w": 2,
        "out_pitch": 4,
        "n_cols": 4,
        "k_h": 1,
        "k_w": 1,
        "stride_h": 1,
        "stride_w": 1,
        "pad_top": 0,
        "pad_left": 0,
        "wslot": 0,
        "pslot": 0,
        "in_zp": 0,
        "out_zp": 0,
        "act_min": -128,
        "act_max": 127,
        "pop_prev": 1,
        "pop_next": 0,
        "push_prev": 0,
        "push_next": 0,
    }
    conv.update(extra_flags.get("conv", {}))
    load.update(extra_flags.get("load", {}))
    return cfg, [
        load,
        conv,
        {"opcode": Opcode.DONE, "pop_prev": 0, "pop_next": 0, "push_prev": 0, "push_next": 0},
    ]


def test_schedule_deadlock_and_hazard_detected():
    cfg, prog = _tiny_program({})
    sched = schedule(prog, cfg)
    t = Timing(cfg)
    assert sched.start[1] >= sched.end[0]  # the CONV waited for the LOAD's token
    assert sched.end[1] - sched.start[1] == instr_cost(prog[1], t)
    cfg, prog = _tiny_program({"load": {"push_next": 0}})
    with pytest.raises(SimError, match="deadlock"):
        schedule(prog, cfg)
    # CONV does not wait: it overlaps the LOAD writing its weight slot
    cfg, prog = _tiny_program({"conv": {"pop_prev": 0}, "load": {"push_next": 0}})
    with pytest.raises(SimError, match="hazard"):
        schedule(prog, cfg)


def _overlap_program(overlap: int, elt_a: int = 512, conv_push: int = 0, elt_push: int = 0):
    """LOAD, CONV (reads 64.., writes 128..), ELTWISE (reads elt_a.., writes 1024..), DONE."""
    cfg, prog = _tiny_program({"conv": {"push_prev": conv_push}})
    elt = {"opcode": Opcode.ELTWISE, "a_addr": elt_a, "b_addr": 768, "out_addr": 1024,
           "count": 256, "p_addr": 2048, "overlap": overlap, "push_prev": elt_push}
    return cfg, prog[:2] + [elt] + prog[2:]


def test_schedule_overlap_two_units():
    """overlap = 1: the vector op starts while the CONV runs (in-order issue, own unit free);
    overlap = 0: it waits for the CONV, as every instruction did before the flag."""
    t = Timing(preset("tiny"))
    cfg, prog = _overlap_program(0)
    s0 = schedule(prog, cfg)
    assert s0.start[2] >= s0.end[1]
    cfg, prog = _overlap_program(1)
    s1 = schedule(prog, cfg)
    assert s1.start[1] <= s1.start[2] < s1.end[1]
    assert s1.end[2] - s1.start[2] == instr_cost(prog[2], t)
    assert s1.total < s0.total
    assert s1.busy["conv"] + s1.busy["vector"] > s1.total - t.startup - s1.start[0]
    # a NOP (like HOST) ignores the flag and waits for both units
    nop = {"opcode": Opcode.NOP, "overlap": 1}
    prog2 = prog[:3] + [nop] + prog[3:]
    s2 = schedule(prog2, cfg)
    assert s2.start[3] >= max(s2.end[1], s2.end[2])


def test_schedule_overlap_conflict_is_a_hazard():
    """overlap = 1 on an instruction that reads what the other unit's in-flight CONV writes
    (or with both pushing the same neighbour) violates hw.isa's contract: flagged."""
    cfg, prog = _overlap_program(1, elt_a=128)  # ELTWISE reads the CONV's output
    with pytest.raises(SimError, match="hazard"):
        schedule(prog, cfg)
    schedule(_overlap_program(0, elt_a=128)[1], cfg)  # without the flag: in order, legal
    cfg, prog = _overlap_program(1, conv_push=1, elt_push=1)
    prog.insert(3, {"opcode": Opcode.LOAD, "buf": BufSel.PBUF, "pop_next": 1})
    prog.insert(4, {"opcode": Opcode.LOAD, "buf": BufSel.PBUF, "slot": 1, "pop_next": 1})
    with pytest.raises(SimError, match="push_prev"):
        schedule(prog, cfg)


def test_sim_rejects_out_of_range_access():
    cfg, prog = _tiny_program({"conv": {"out_addr": cfg_size("tiny") - 2}})
    sim = IsaSim(cfg, prog, [])
    with pytest.raises(SimError, match="outside"):
        sim.run()


def cfg_size(name):
    return preset(name).sram_bytes


def test_cycle_model_properties(person_detect):
    """Loads are hidden behind compute, and a large pointwise conv streams at >= 90 % of the
    array."""
    c = compile_graph(person_detect, "default")
    sched = schedule(c.program, c.config, host_calls=c.host_calls)
    assert sched.busy["compute"] >= 0.95 * sched.total
    b = ModelBuilder()
    rng = np.random.default_rng(0)
    x = b.input((1, 32, 32, 64), "int8", 0.05, 0)
    y = b.conv2d(x, b.weights(rng.normal(size=(128, 1, 1, 64)), axis=0), out_scale=0.2, out_zp=0)
    b.output(y)
    g = load_tflite(b.finish())
    cc = compile_graph(g, "default")
    s = schedule(cc.program, cc.config)
    assert g.macs() / (s.total * cc.config.pes) >= 0.9


@pytest.mark.full
def test_mobilenet_v2_224_bit_exact_default():
    from models.zoo.generate import mobilenet_v2_like

    g = load_tflite(mobilenet_v2_like(input_hw=(224, 224), alpha=1.0, seed=0))
    rng = np.random.default_rng(5)
    isa = _assert_exact(g, "default", [_inputs(g, rng) for _ in range(2)])
    assert isa.compiled.macs == g.macs() and not isa.compiled.host_calls


def _vs_tflm(seeds, configs):
    from models.tflm_ref import TflmReference

    for seed in seeds:
        data = random_model(seed)
        g = load_tflite(data)
        ref = TflmReference(data)
        rng = np.random.default_rng(seed)
        xs = [_inputs(g, rng) for _ in range(3)]
        want = [ref.run(x) for x in xs]
        for config in configs:
            isa = IsaBackend(compile_graph(g, config))
            for x, w in zip(xs, want, strict=True):
                for a, b in zip(isa.run(x), w, strict=True):
                    assert np.array_equal(a.reshape(b.shape), b), (seed, config)


def test_random_models_vs_tflm():
    """The oracle itself, not only the golden model: a few random models on two presets."""
    _vs_tflm(range(100, 104), ("default", "ecp5"))


@pytest.mark.full
def test_random_models_vs_tflm_many():
    _vs_tflm(range(200, 260), ("default", "tiny", "ecp5"))


@pytest.mark.parametrize("op", ZP_WRAP_OPS)
def test_output_zero_point_int32_corner(op):
    """Requantized values within |zp| of INT32_MAX: the ISA simulator wraps the zero-point add in
    int32 like TFLM (the oracle here, not the golden model)."""
    assert_zp_wrap_equals_tflm(op, lambda g: IsaBackend(compile_graph(g, "tiny")))


# ---------------------------------------------------------------------------------------------
# cycle model: the RTL units' mechanisms (hw/conv_unit.py, hw/gemm.py, hw/vector.py)
def _dw(**f):
    ins = {"opcode": Opcode.DWCONV, "in_addr": 0, "out_addr": 1 << 20, "w_addr": 2 << 20,
           "p_addr": 3 << 20, "depth_mult": 1, "stride_h": 1, "stride_w": 1, "pad_top": 0,
           "pad_left": 0, "k_h": 3, "k_w": 3}
    ins.update(f)
    return ins


def test_cycle_model_vector_line_cache():
    """The vector unit fetches one SRAM line per cycle into its line cache: a command costs
    max(1, lines it misses); a vector crossing a line end needs both lines."""
    from sim.isa_sim import _Lines

    t = Timing(preset("default"))  # 256-byte lines, 16 lanes
    lc = _Lines(t)
    assert lc.cmd([0, 256, 512]) == 3
    assert lc.cmd([16, 272, 528]) == 1  # all hits
    assert lc.cmd([]) == 1
    assert lc.cmd([1016]) == 2  # bytes 1016..1031: lines 3 and 4


def test_cycle_model_depthwise_commands():
    """DWCONV: one command per output pixel and group of `lanes` channels (no packing of pixels
    into idle lanes), each command costing its line misses; super-groups of up to 16 groups (one
    256-byte line of channels) per pixel, so a line fetched for a pixel serves 16 commands."""
    t = Timing(preset("default"))
    # 8 or 16 channels: one group of 196 pixel commands either way (+ a few line misses)
    a = instr_cost(_dw(in_h=16, in_w=16, in_c=8, out_h=14, out_w=14), t)
    b = instr_cost(_dw(in_h=16, in_w=16, in_c=16, out_h=14, out_w=14), t)
    assert 196 < a <= b < 196 * 1.4
    # 256 channels (one line per pixel): a pixel is 16 commands of one super-group. Stride 1
    # brings one new column of 3 lines per pixel, all missed by the pixel's first command (3
    # cycles, then 15 hits): 18 cycles per pixel; stride 2 two new columns (6 lines): 21.
    s1 = instr_cost(_dw(in_h=33, in_w=33, in_c=256, out_h=31, out_w=31), t)
    s2 = instr_cost(_dw(in_h=63, in_w=63, in_c=256, out_h=31, out_w=31, stride_h=2, stride_w=2),
                    t)
    pix = 31 * 31 * 16  # pixel commands (16 groups)
    assert 18 / 16 * pix <= s1 <= 1.2 * pix
    assert 21 / 16 * pix <= s2 <= 1.4 * pix
    assert 1.1 < s2 / s1 < 1.25


def test_cycle_model_super_groups():
    """Groups per super-group: POOL 16 (a line of channels on default); DWCONV as many as the
    weight memory (16 rows of 9 taps on default) holds kernels for, halving; 1 above 144 taps."""
    from sim.isa_sim import _dw_groups

    t = Timing(preset("default"))
    assert t.dw_groups == 16 and t.dw_weight_rows == 16 and t.dw_taps == 9
    assert [_dw_groups(n, True, t) for n in (1, 9, 16, 25, 49, 81, 144, 145)] == [
        16, 16, 8, 4, 2, 1, 1, 1]
    assert _dw_groups(49, False, t) == 16
    tiny = Timing(preset("tiny"))  # 4 lanes, 16-byte lines, 4 taps per command: 3 rows a 3x3
    assert tiny.dw_groups == 4 and tiny.dw_weight_rows == 12
    assert [_dw_groups(n, True, tiny) for n in (9, 12, 16, 25, 48, 49)] == [4, 4, 2, 1, 1, 1]


def test_cycle_model_mean_one_tap_per_command():
    """MEAN over 7x7 (49 taps) keeps its weights in the weight memory (6 rows of 9 taps, 2 groups
    per super-group), but 1280 channels put every tap in its own line and 49 lines do not stay in
    the 24-line cache from one group to the next: ~49 misses for a group's weights and 49 for its
    window. A kernel of more than 144 taps takes one tap per command with its weight vector."""
    t = Timing(preset("default"))
    cyc = instr_cost(_dw(in_h=7, in_w=7, in_c=1280, out_h=1, out_w=1, k_h=7, k_w=7), t)
    groups = 1280 // 16
    assert 2 * 49 * groups <= cyc <= 2 * 49 * groups + 10 * groups + 50
    cyc = instr_cost(_dw(in_h=13, in_w=13, in_c=1280, out_h=1, out_w=1, k_h=13, k_w=13), t)
    assert 2 * 169 * groups <= cyc <= 2 * 169 * groups + 20 * groups + 50


def test_cycle_model_first_layer_pieces():
    """The conv unit's act gather walks a 3-channel 3x3 window in pieces (dense kernel rows merged):
    K = 27 is two K tiles of 16 lanes; tile 0 = kernel row 0 (9 bytes) + 1 tap + a run over two
    taps, tile 1 = the rest of row 1 + kernel row 2: 3 + 2 pieces per interior pixel."""
    from sim.isa_sim import _walk

    inside = ((True, True, True), ((True, True, True, True), True))
    assert _walk(3, 3, 3, 16, 2, True, *inside) == (3, 2)
    # a 16-channel input: one piece per 16-lane beat
    assert _walk(16, 3, 3, 16, 9, True, *inside) == (1,) * 9


def test_cycle_model_small_m_blocks():
    """Two weight banks: tile i + 1 loads into tile i - 1's bank once that bank has drained
    (R + C + 1 cycles after its last row), so with r < R + C + 1 rows per tile two tiles take
    r + R + C + 1 cycles; long blocks stream one row per cycle and tile."""
    t = Timing(preset("default"))  # R = C = 16, 128-row blocks

    def conv(hw, in_c):
        return instr_cost({"opcode": Opcode.CONV, "in_h": hw, "in_w": hw, "in_c": in_c,
                           "out_h": hw, "out_w": hw, "k_h": 1, "k_w": 1, "n_cols": 16,
                           "stride_h": 1, "stride_w": 1}, t)

    # 4 rows: 64 vs 32 K tiles = 16 more tile pairs of 4 + 33 cycles
    assert conv(2, 1024) - conv(2, 512) == 16 * (4 + 33)
    # 32 blocks of 128 rows x 32 more tiles, one row per cycle
    assert conv(64, 1024) - conv(64, 512) == 32 * 128 * 32


def test_cycle_model_vector_command_fifo():
    """ASM assembles a command (one line per cycle, from the cycle after REQ queued it) while REQ
    goes on into an 8-deep command FIFO: a 10-miss command followed by hits stalls REQ until
    it has been assembled (10 + 8 hits + 3 cycles)."""
    from sim.isa_sim import _Lines

    lc = _Lines(Timing(preset("default")))
    cyc = lc.cmd([256 * i for i in range(10)])
    cyc += sum(lc.cmd([16]) for _ in range(8))
    assert cyc == 10 + 8 + 3

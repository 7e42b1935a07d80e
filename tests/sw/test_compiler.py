"""Compiler passes: PAD folding, activation fusion, host prologue/tail, requant constants, memory
limits. Every compiled model is also run on the ISA simulator and compared with the golden graph."""

from __future__ import annotations

import numpy as np
import pytest

from hw.errors import UserError
from hw.isa import PARAM_RECORD_BYTES, Opcode
from models.arith import quantize_multiplier
from models.golden import GoldenModel
from models.tflite_writer import ModelBuilder
from sw.compiler import compile_graph, estimate
from sw.runtime import IsaBackend
from sw.tflite_import import load_tflite
from tests.sim.test_isa_sim import _inputs as random_inputs


def _check(g, config="default", n=3, seed=0):
    c = compile_graph(g, config)
    isa, gold = IsaBackend(c), GoldenModel(g)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        xs = random_inputs(g, rng, float_range=(-2, 2))
        for a, b in zip(isa.run(xs), gold.run(xs), strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    return c


def _opcodes(c):
    return [i["opcode"] for i in c.program]


def test_pad_folded_into_conv():
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    # 6 channels: a kernel row (18 bytes) is wider than the array, so no first-layer packing
    x = b.input((1, 9, 7, 6), "int8", 0.05, -7)
    p = b.pad(x, [[0, 0], [2, 1], [1, 2], [0, 0]])
    y = b.conv2d(
        p,
        b.weights(rng.normal(size=(5, 3, 3, 6)), axis=0),
        padding="VALID",
        stride=2,
        out_scale=0.3,
        out_zp=4,
    )
    b.output(y)
    g = load_tflite(b.finish())
    c = _check(g)
    assert [layer.kind for layer in c.layers] == ["CONV_2D"]
    assert "PAD" in c.layers[0].name
    assert Opcode.COPY not in _opcodes(c) and Opcode.FILL not in _opcodes(c)
    conv = next(i for i in c.program if i["opcode"] == Opcode.CONV)
    assert (conv["pad_top"], conv["pad_left"], conv["in_h"], conv["in_w"]) == (2, 1, 9, 7)


def _packed_convs(c):
    """CONVs in the first-layer packed form: k_w 1, pixels overlapping (in_c > in_pitch)."""
    return [i for i in c.program if i["opcode"] == Opcode.CONV and i["k_w"] == 1
            and 0 < i["in_pitch"] < i["in_c"]]


@pytest.mark.parametrize(
    "cin, k, stride, padding, pad, config, cout, expect",
    [
        (3, 3, 2, "SAME", None, "default", 32, "packed"),  # the MobileNet/RGB first layer
        (3, 3, 1, "SAME", None, "default", 20, "packed"),  # pad_left 1: a framed buffer column
        (1, 3, 2, "VALID", None, "tiny", 7, "packed"),     # gray input on a 4x4 array
        (2, 3, 2, "SAME", [[0, 0], [1, 2], [2, 1], [0, 0]], "ecp5", 7, "packed"),  # folded PAD
        (1, 5, 3, "SAME", None, "ecp5", 7, "packed"),
        (3, 2, 2, "VALID", None, "default", 7, "any"),     # 6-byte kernel rows: rarely worth it
        (3, 3, 2, "SAME", None, "default", 8, "multi"),    # 8 outputs: two pixels per beat
        (1, 3, 1, "SAME", None, "tiny", 2, "multi"),       # two pixels per beat on a 4x4 array
        (1, 3, 2, "SAME", None, "ecp5", 2, "multi"),       # two or more pixels within 8 lanes
    ],
)
def test_first_layer_packing(cin, k, stride, padding, pad, config, cout, expect):
    """A conv with few input channels runs as one array beat per kernel row over a framed copy
    of its input (sw/compiler.py _pack_kernel_rows): ISA simulator == golden == TFLM."""
    from models.tflm_ref import TflmReference

    rng = np.random.default_rng(cin * 100 + k * 10 + stride)
    b = ModelBuilder()
    x = b.input((1, 23, 24, cin), "int8", 0.04, -5)
    if pad is not None:
        x = b.pad(x, pad)
    y = b.conv2d(x, b.weights(rng.normal(size=(cout, k, k, cin)), axis=0), stride=stride,
                 padding=padding, out_scale=0.2, out_zp=3, activation="RELU6")
    b.output(y)
    data = b.finish()
    g = load_tflite(data)
    c = _check(g, config)
    packed = _packed_convs(c)
    if expect != "any":
        assert packed and Opcode.COPY in _opcodes(c), "expected the packed layer"
        assert sum(i["n_cols"] for i in packed) in (cout, 2 * cout, 3 * cout, 4 * cout)
    if expect == "multi":  # the columns hold P >= 2 adjacent pixels' outputs (NHWC order)
        assert packed[0]["n_cols"] == packed[0]["out_pitch"] >= 2 * cout
    ref = TflmReference(data)
    isa = IsaBackend(c)
    for _ in range(2):
        xs = [rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in g.input_tensors()]
        assert np.array_equal(isa.run(xs)[0], ref.run(xs)[0])


def test_first_layer_packing_is_cheaper_on_mobilenet():
    """The MobileNetV2 first layer (224x224x3, 3x3 stride 2, 32 outputs) is packed and the cycle
    model's estimate of that layer drops below the gathered conv's (the reason to pack)."""
    from hw.isa import Timing
    from models.zoo.generate import mobilenet_v2_like
    from sim.isa_sim import instr_cost

    g = load_tflite(mobilenet_v2_like(input_hw=(224, 224), alpha=1.0, seed=0))
    c = compile_graph(g, "default")
    convs = _packed_convs(c)
    assert len(convs) == 2  # 32 output channels = two column tiles of 16
    t = Timing(c.config)
    unpacked = sum(instr_cost(dict(i, in_w=224, in_c=3, in_pitch=0, k_w=3, stride_w=2,
                                   pad_left=0), t) for i in convs)
    assert estimate(c)["layers"][0]["cycles"] < unpacked


def test_channel_pad_uses_fill_and_copy():
    b = ModelBuilder()
    x = b.input((1, 4, 5, 3), "int8", 0.05, 9)
    y = b.pad(x, [[0, 0], [1, 0], [0, 2], [1, 2]])
    y = b.max_pool2d(y, filter=2, stride=1)
    b.output(y)
    c = _check(load_tflite(b.finish()))
    ops = _opcodes(c)
    assert Opcode.FILL in ops and Opcode.COPY in ops and not c.host_calls


def test_activation_fusion_clamp_vs_lut():
    rng = np.random.default_rng(2)
    b = ModelBuilder()
    x = b.input((1, 6, 6, 4), "int8", 0.05, 0)
    y = b.conv2d(x, b.weights(rng.normal(size=(8, 3, 3, 4)), axis=0), out_scale=0.1, out_zp=-3)
    y = b.relu6(y)  # a clamp on the conv's output codes: fused, no extra instruction
    y = b.conv2d(y, b.weights(rng.normal(size=(8, 1, 1, 8)), axis=0), out_scale=0.1, out_zp=0)
    y = b.leaky_relu(y, alpha=0.1)  # not a clamp on the conv's range: a LUT instruction
    y = b.leaky_relu(y, alpha=0.2)  # after a LUT: a LUT of its own
    b.output(y)
    g = load_tflite(b.finish())
    c = _check(g)
    names = [layer.name for layer in c.layers]
    assert len(names) == 4 and names[0].endswith("+RELU6") and names[2].endswith("LEAKY_RELU")
    assert _opcodes(c).count(Opcode.LUT) == 2


def test_host_prologue_and_tail():
    from models.zoo.generate import float_io_model, nchw_input_model

    g = load_tflite(float_io_model())
    c = _check(g)
    assert [g.ops[k].kind for k in c.host_pre] == ["QUANTIZE"]
    assert {g.ops[k].kind for k in c.host_post} <= {"SOFTMAX", "DEQUANTIZE", "LOGISTIC"}
    assert c.host_post and not c.host_calls
    g = load_tflite(nchw_input_model())
    c = _check(g)
    assert [g.ops[k].kind for k in c.host_pre] == ["TRANSPOSE"]
    assert c.inputs[0].shape[-1] == g.tensors[g.inputs[0]].shape[1]  # NPU input is NHWC


def test_requant_constants_are_tflm_quantize_multiplier():
    """The PBUF records hold exactly QuantizeMultiplier(in_scale * w_scale[c] / out_scale)."""
    rng = np.random.default_rng(3)
    b = ModelBuilder()
    x = b.input((1, 5, 5, 3), "int8", 0.037, 5)
    w = b.weights(rng.normal(size=(20, 3, 3, 3)) * rng.uniform(0.01, 3, size=(20, 1, 1, 1)), axis=0)
    y = b.conv2d(x, w, bias=rng.normal(size=20), out_scale=0.21, out_zp=-9)
    b.output(y)
    g = load_tflite(b.finish())
    c = _check(g)
    wt = g.tensors[g.ops[0].inputs[1]]
    bias = g.tensors[g.ops[0].inputs[2]].data
    image = dict(c.image)
    loads = [i for i in c.program if i["opcode"] == Opcode.LOAD and i["buf"].name == "PBUF"]
    recs = np.concatenate(
        [np.frombuffer(image[ld["sram_addr"]], "<i4").reshape(-1, 3) for ld in loads]
    )
    assert recs.shape == (20, 3) and all(ld["nbytes"] % PARAM_RECORD_BYTES == 0 for ld in loads)
    in_s = float(np.float32(0.037))
    out_s = float(np.float32(0.21))
    for ch in range(20):
        m, s = quantize_multiplier(in_s * float(wt.quant.scale[ch]) / out_s)
        # the input zero point 5 is folded in: sum((x - 5) * w) = sum(x * w) - 5 * sum(w)
        folded = int(bias[ch]) - 5 * int(wt.data[ch].astype(np.int64).sum())
        assert tuple(recs[ch]) == (folded, m, s)


def test_model_too_big_for_preset():
    from pathlib import Path

    g = load_tflite(Path(__file__).resolve().parents[2] / "models" / "zoo" / "person_detect.tflite")
    with pytest.raises(UserError, match=r"needs [\d,]+ bytes of SRAM .* 'ice40' has 131,072"):
        compile_graph(g, "ice40")


def test_estimate_layers_sum_and_loads_overlap():
    from models.zoo.generate import mobilenet_v2_like

    g = load_tflite(mobilenet_v2_like(input_hw=(96, 96), alpha=0.5, num_classes=10, seed=3))
    c = compile_graph(g, "default")
    est = estimate(c)
    assert sum(r["cycles"] for r in est["layers"]) == est["cycles"]
    assert est["busy"]["load"] > 0
    # loads run concurrently with compute: the total is far below the sum of busy times
    assert est["cycles"] < est["busy"]["compute"] + 0.5 * est["busy"]["load"]
    assert sum(r["macs"] for r in est["layers"]) == g.macs()


def test_input_range_normalization():
    """A declared pixel range maps u to about u * (hi - lo) / (255 s) + lo / s + zp."""
    from pathlib import Path

    from models.isp import IspParams, normalize

    g = load_tflite(Path(__file__).resolve().parents[2] / "models" / "zoo" / "person_detect.tflite")
    s, zp = g.tensors[g.inputs[0]].quant.scalar()
    u = np.arange(256).reshape(1, 256, 1)
    for lo, hi in ((-1.0, 1.0), (0.0, 1.0), (-0.5, 2.0)):
        n = compile_graph(g, "default", input_range=(lo, hi)).input_norm
        p = IspParams.make(
            4,
            4,
            size=(1, 1),
            channels=1,
            norm_mul=(n["mul"][0], 1, 1),
            norm_shift=(n["shift"][0], 0, 0),
            norm_off=(n["offset"][0], 0, 0),
        )
        got = normalize(u, p).reshape(-1).astype(np.int64)
        want = np.clip(
            np.floor(lo / s + zp + 0.5) + np.floor(u.reshape(-1) * (hi - lo) / (255 * s) + 0.5),
            -128,
            127,
        )
        assert np.abs(got - want).max() <= 1  # fixed-point multiplier vs real ratio
        if (lo, hi) == (-1.0, 1.0):  # person_detect's own range: exactly the default v - 128
            assert np.array_equal(got, np.clip(u.reshape(-1) - 128, -128, 127))
    with pytest.raises(UserError, match="input range"):
        compile_graph(g, "default", input_range=(1.0, 0.0))


def test_deep_reductions_beyond_the_weight_buffer():
    """On ecp5 (the smallest WBUF of the fast presets): a 1x1 conv with K beyond the weight
    buffer runs as VMATMUL; 3x3 convs of two and three buffers' worth of K run as CONV chunks of
    input channels accumulating int32 partial sums (FIRST, MID..., LAST); all bit-exact."""
    from hw.config import preset
    from hw.isa import AccMode, wbuf_kmax

    cfg = preset("ecp5")
    kmax = wbuf_kmax(cfg)
    rng = np.random.default_rng(9)
    b = ModelBuilder()
    k1 = -(-(kmax + 1) // 64) * 64
    x = b.input((1, 4, 4, k1), "int8", 0.05, 1)
    y = b.conv2d(x, b.weights(rng.normal(size=(8, 1, 1, k1)), axis=0), out_scale=1.0, out_zp=0)
    b.output(y)
    c = _check(load_tflite(b.finish()), "ecp5")
    assert Opcode.VMATMUL in _opcodes(c) and Opcode.CONV not in _opcodes(c)
    per = kmax // 9                       # input channels of a 3x3 kernel one buffer holds
    for cin, modes in ((per + per // 3, [1, 3]), (2 * per + per // 2, [1, 2, 3])):
        b = ModelBuilder()
        x = b.input((1, 6, 5, cin), "int8", 0.05, -3)
        w = b.weights(rng.normal(size=(12, 3, 3, cin)), axis=0)
        y = b.conv2d(x, w, bias=rng.normal(size=12), out_scale=1.5, out_zp=2, activation="RELU")
        b.output(y)
        c = _check(load_tflite(b.finish()), "ecp5")
        convs = [i for i in c.program if i["opcode"] == Opcode.CONV]
        tiles = -(-12 // cfg.array_cols)      # 12 output channels in column tiles
        assert not c.host_calls and len(convs) == tiles * len(modes)
        assert [i["acc"].value for i in convs[: len(modes)]] == modes
        assert all(i["in_pitch"] == cin for i in convs)
        assert convs[0]["acc"] == AccMode.FIRST


# ------------------------------------------------------------------ unusual graphs against TFLM
def _edge_broadcast_logistic(b, rng):
    x = b.input((1, 9, 9, 3), "int8", 0.04, -5)
    y = b.input((1, 1, 1, 6), "int8", 0.02, 3)
    c = b.conv2d(
        x,
        b.weights(rng.normal(size=(6, 3, 3, 3)), axis=0),
        stride=2,
        padding="VALID",
        out_scale=0.1,
        out_zp=2,
    )
    a = b.add(y, c, out_scale=0.12, out_zp=-4)  # broadcast with a as the small one
    m = b.mul(
        a,
        b.const(np.array([37], np.int8).reshape(1, 1, 1, 1), "int8", 0.05, 0),
        out_scale=0.05,
        out_zp=1,
    )
    l = b.logistic(m)
    q = b.quantize(l, 0.01, -20)
    b.output(q, c)


def _edge_concat_host_mid(b, rng):
    x = b.input((1, 8, 8, 4), "int8", 0.05, 0)
    br = [
        b.conv2d(x, b.weights(rng.normal(size=(k, 1, 1, 4)), axis=0), out_scale=0.05, out_zp=0)
        for k in (3, 5, 2)
    ]
    cat = b.concatenation(br, axis=3)
    s = b.softmax(cat)  # mid-graph softmax -> host
    t = b.transpose(s, [0, 2, 1, 3])  # mid transpose -> store-queue COPYs
    d = b.depthwise_conv2d(
        t,
        b.depthwise_weights(rng.normal(size=(1, 3, 3, 20))),
        stride=2,
        padding="SAME",
        out_scale=0.02,
        out_zp=0,
    )
    mp = b.max_pool2d(d, filter=2, stride=2, padding="VALID")
    mn = b.mean(mp, [1, 2], keep_dims=False, out_scale=0.03, out_zp=0)
    b.output(mn)


def _edge_dilated_resize_pad_fc(b, rng):
    x = b.input((1, 10, 7, 3), "int8", 0.05, 10)
    c = b.conv2d(
        x,
        b.weights(rng.normal(size=(4, 3, 3, 3)), axis=0),
        dilation=2,
        padding="SAME",
        out_scale=0.2,
        out_zp=0,
    )
    r = b.resize_nearest_neighbor(c, (15, 9))  # non-integer -> host
    r2 = b.resize_nearest_neighbor(c, (20, 14), align_corners=True)
    p = b.pad(r2, [[0, 0], [0, 0], [0, 0], [2, 1]])  # channel pad -> FILL+COPY
    h = b.hard_swish(p, out_scale=0.1, out_zp=-100)
    f = b.fully_connected(
        h,
        b.weights(rng.normal(size=(7, 7)), axis=None),
        out_scale=0.5,
        out_zp=0,
        keep_num_dims=True,
    )
    b.output(f, r)


def _edge_nchw_float_tail(b, rng):
    x = b.input((1, 3, 12, 12), "float32")
    q0 = b.quantize(x, 0.03, 4)
    q = b.transpose(q0, [0, 2, 3, 1])
    c = b.conv2d(
        q,
        b.weights(rng.normal(size=(16, 5, 5, 3)), axis=0),
        stride=2,
        out_scale=0.3,
        out_zp=-7,
        activation="RELU6",
    )
    a = b.average_pool2d(c, filter=3, stride=1, padding="SAME")
    lr = b.leaky_relu(a, alpha=0.3)
    sq = b.reshape(lr, (1, -1))
    f = b.fully_connected(
        sq, b.weights(rng.normal(size=(3, sq.shape[1])), axis=None), out_scale=0.3, out_zp=0
    )
    s = b.softmax(f)
    dq = b.dequantize(s)
    b.output(dq)


@pytest.mark.parametrize(
    "build, host_ops",
    [
        (_edge_broadcast_logistic, []),
        (_edge_concat_host_mid, ["SOFTMAX"]),
        (_edge_dilated_resize_pad_fc, ["CONV_2D"]),
        (_edge_nchw_float_tail, []),
    ],
    ids=["broadcast-logistic", "concat-host-mid", "dilated-resize-pad-fc", "nchw-float-tail"],
)
def test_unusual_graphs_vs_tflm(build, host_ops):
    """Broadcast ADD with the small operand first, scalar MUL, mid-graph LOGISTIC (LUT), three-way
    concat, mid-graph SOFTMAX (host) and TRANSPOSE (COPY), dilated conv (host) and fractional
    resize (COPY), channel
    PAD, 4-D FC, NCHW float input with a SOFTMAX+DEQUANTIZE tail; several outputs."""
    from models.tflm_ref import TflmReference

    b = ModelBuilder()
    rng = np.random.default_rng(0)
    build(b, rng)
    data = b.finish()
    g = load_tflite(data)
    ref = TflmReference(data)
    for config in ("default", "ecp5"):
        isa = IsaBackend(compile_graph(g, config))
        assert [g.ops[k].kind for c in isa.compiled.host_calls for k in c["ops"]] == host_ops
        for _ in range(3):
            xs = random_inputs(g, rng, float_range=(-2, 2))
            for a, w in zip(isa.run(xs), ref.run(xs), strict=True):
                assert np.array_equal(a.reshape(w.shape), w)


@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean_over_a_1x1_map_is_a_lut_on_the_die(keep_dims):
    """A global MEAN reaching a 1x1 map (small inputs) runs as one LUT on the vector unit (the
    golden MEAN kernel tabulated), not as a mid-graph host call; ISA == TFLM on all 256 codes."""
    from models.tflm_ref import TflmReference

    rng = np.random.default_rng(5)
    b = ModelBuilder()
    x = b.input((1, 1, 1, 256), "int8", 0.05, -3)
    m = b.mean(x, (1, 2), keep_dims, 0.031, 7)
    y = b.fully_connected(m if not keep_dims else b.reshape(m, (1, 256)),
                          b.weights(rng.normal(size=(4, 256)), axis=None), out_scale=0.5,
                          out_zp=0)
    b.output(y)
    b.output(m)
    data = b.finish()
    g = load_tflite(data)
    c = compile_graph(g, "tiny")
    assert not c.host_calls and Opcode.LUT in _opcodes(c)
    codes = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 1, 256)
    got, want = IsaBackend(c).run([codes]), TflmReference(data).run([codes])
    for a, w in zip(got, want, strict=True):
        assert np.array_equal(a.reshape(w.shape), w)


@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D"])
def test_batch_above_one_windows_are_exact(kind):
    """Window ops at batch 2 (the NPU's instructions run one image): never silently wrong; the
    ISA backend equals TFLM (such an op runs on the host, with a warning)."""
    from models.tflm_ref import TflmReference

    rng = np.random.default_rng(5)
    b = ModelBuilder()
    x = b.input((2, 5, 4, 3), "int8", 0.05, 1)
    if kind == "CONV_2D":
        y = b.conv2d(x, b.weights(rng.normal(size=(4, 3, 3, 3)), axis=0), out_scale=0.1, out_zp=0)
    elif kind == "DEPTHWISE_CONV_2D":
        y = b.depthwise_conv2d(x, b.depthwise_weights(rng.normal(size=(1, 3, 3, 3))),
                               out_scale=0.1, out_zp=0)
    else:
        y = b.max_pool2d(x, filter=2, stride=1)
    b.output(y)
    data = b.finish()
    g = load_tflite(data)
    isa = IsaBackend(compile_graph(g, "default"))
    xs = [rng.integers(-128, 128, size=(2, 5, 4, 3), dtype=np.int8)]
    want = TflmReference(data).run(xs)[0]
    assert np.array_equal(isa.run(xs)[0].reshape(want.shape), want)

"""The NPU compiler: graph IR -> passes -> ISA program + memory image (:class:`Compiled`).

Passes, in order (docs/compiler.md):

1. **Input prologue**: QUANTIZE (float -> int8) and TRANSPOSE ops directly at a graph input are
   absorbed: the NPU's input is the tensor after them (the ISP writes it; the runtime applies them
   to a tensor input).
2. **Host tail** (SPEC section 6): SOFTMAX / LOGISTIC / DEQUANTIZE ops whose results are only graph
   outputs run on the host; the metadata carries the tensors they start from.
3. **Fold PAD into conv**: a spatial PAD whose only readers are CONV_2D / DEPTHWISE_CONV_2D becomes
   their top/left padding (bottom/right padding is implied by the output size).
4. **Fuse activations**: a unary int8 op (RELU, RELU6, LEAKY_RELU, HARD_SWISH, LOGISTIC, QUANTIZE,
   ...) after a compute op is evaluated on all 256 input codes with the golden kernel; if it is a
   clamp on the producer's output range it becomes the producer's activation range, otherwise a LUT
   instruction.
5. **Lowering**: CONV_2D / FULLY_CONNECTED -> column tiles of the array (per-channel bias,
   multiplier and shift from the golden kernels' TFLM constant code); DEPTHWISE_CONV_2D and MEAN
   over H, W -> DWCONV; pools -> POOL; ADD / MUL -> ELTWISE; CONCATENATION / PAD / TRANSPOSE /
   RESIZE_NEAREST_NEIGHBOR -> COPY / FILL; RESHAPE / SQUEEZE / identity TRANSPOSE -> buffer
   aliases; anything else -> a HOST call running the golden kernel (``host_calls``: the "mid"
   host ops of the compile report; the layout pass of the importer, sw.layout, leaves PyTorch
   NCHW exports none).
6. **Memory planning**: constants, then activations (first fit over live ranges), then the program;
   a model that does not fit the preset's SRAM raises UserError with the sizes.
7. **Scheduling**: weight/parameter loads are double-buffered in WBUF/PBUF slots and issued one tile
   ahead; dependency tokens make load, compute and store overlap safely (checked by the simulator's
   hazard check).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from hw.config import Config, preset
from hw.errors import UserError
from hw.isa import (
    ELT_PARAM_WORDS,
    INSTR_BYTES,
    PARAM_RECORD_BYTES,
    QUEUE_OF,
    AccMode,
    BufSel,
    EltMode,
    Opcode,
    PoolMode,
    Queue,
    Timing,
    decode_program,
    encode_program,
    fits,
    wbuf_kmax,
)
from models.arith import activation_range_quantized, quantize_multiplier
from models.gemm import fold_input_zero_point
from models.graph import Graph, Op, Tensor
from models.kernels import get_prepare
from models.kernels.common import activation_range, out_size, per_channel_multipliers, same_padding
from sim.isa_sim import (
    _contend,
    _footprint,
    compute_unit,
    instr_cost,
    normalize,
    overlap_conflict,
    read_rate,
)

__all__ = ["compile_graph", "Compiled", "TensorDesc", "LayerInfo", "HOST_TAIL_OPS"]

HOST_TAIL_OPS = ("SOFTMAX", "LOGISTIC", "DEQUANTIZE")
UNARY_LUT_OPS = (
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "LEAKY_RELU",
    "HARD_SWISH",
    "LOGISTIC",
    "TANH",
    "QUANTIZE",
)
#: Row bands per layer for the conv/vector interleave (``_Compiler.band_items``): at most
#: BAND_MAX bands of at least BAND_MIN_PIXELS output pixels (0 or 1: no banding).
BAND_MAX = 4
BAND_MIN_PIXELS = 64
#: the same bound for vector-unit layers (DWCONV, ELTWISE): their per-instruction overhead is small
BAND_MIN_PIXELS_VECTOR = 32
#: at most this many bands for vector-unit layers (finer than the conv's: a depthwise band then
#: needs fewer of the producing conv's bands and overlaps the next ones)
BAND_MAX_VECTOR = 8
#: Merge the conv and vector streams and set ``overlap`` (``_Compiler.interleave``).
INTERLEAVE = True
#: How far (other-unit items) the interleave looks back for conflicts; beyond it, keep the order.
INTERLEAVE_WINDOW = 64

ALIGN = 16


@dataclass
class TensorDesc:
    """One tensor as the bundle and the metadata describe it."""

    tensor: int
    name: str
    addr: int
    shape: tuple
    dtype: str
    scale: float
    zero_point: int

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TensorDesc:
        return cls(
            int(d["tensor"]),
            str(d["name"]),
            int(d["addr"]),
            tuple(int(s) for s in d["shape"]),
            str(d["dtype"]),
            float(d["scale"]),
            int(d["zero_point"]),
        )


@dataclass
class LayerInfo:
    """One compiled layer (a graph op plus what was fused into it) for reports and per-layer
    stats."""

    name: str
    kind: str
    engine: str  # 'array', 'vector', 'store', 'host', 'alias'
    ops: list
    in_shapes: list
    out_shape: list
    macs: int
    const_bytes: int = 0
    act_bytes: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Compiled:
    """Program, memory image and the descriptors the runtime needs (serialised by sw.bundle)."""

    config: Config
    program: list  # decoded instruction dicts
    image: list  # [(addr, bytes)]
    inputs: list  # TensorDesc of the NPU inputs (what the ISP writes)
    outputs: list  # TensorDesc of the NPU outputs (carried in the metadata)
    graph_inputs: list  # [{"tensor", "name", "shape", "dtype"}] of the model
    graph_outputs: list  # tensor indices of the model's outputs
    host_pre: list  # graph op indices run on the host before the NPU
    host_post: list  # graph op indices run on the host after the NPU
    host_calls: list  # HOST instruction table
    layers: list  # LayerInfo
    layer_of: list  # per instruction: index into layers (-1: none)
    memory: dict
    input_norm: dict
    host_graph: Graph  # the graph (constants kept only where host ops need them)
    macs: int = 0
    warnings: list = field(default_factory=list)

    @property
    def program_bytes(self) -> bytes:
        return encode_program(self.program)


# -----------------------------------------------------------------------------------------------
# helpers
def _nbytes(t: Tensor) -> int:
    return int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


def _qp(t: Tensor) -> tuple[float, int]:
    if t.quant is None or t.quant.scale.size == 0:
        return 1.0, 0
    return float(t.quant.scale[0]), int(t.quant.zero_point[0])


def _params_blob(bias, mult, shift) -> bytes:
    rec = np.stack(
        [np.asarray(bias, np.int64), np.asarray(mult, np.int64), np.asarray(shift, np.int64)],
        axis=1,
    ).astype("<i4")
    return rec.tobytes()


def _unary_lut(op: Op, g: Graph) -> np.ndarray | None:
    """The op's int8 -> int8 function on all 256 codes (index code + 128), or None if not int8 ->
    int8."""
    x_t, y_t = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if x_t.dtype != "int8" or y_t.dtype != "int8" or x_t.quant is None or y_t.quant is None:
        return None
    if x_t.quant.per_channel or y_t.quant.per_channel:
        return None
    xs = dataclasses.replace(x_t, index=0, shape=(256,), data=None)
    ys = dataclasses.replace(y_t, index=1, shape=(256,), data=None)
    mini = Graph("lut", [xs, ys], [Op(0, op.kind, [0], [1], dict(op.options))], [0], [1])
    fn = get_prepare(op.kind)(mini.ops[0], mini)
    codes = np.arange(-128, 128, dtype=np.int8)
    return np.asarray(fn([codes])[0], np.int8).reshape(256)


@dataclass
class _Node:
    """A middle (NPU-side) graph op during the passes."""

    op: Op
    ins: list  # tensor indices read (after pad folding)
    outs: list  # tensor indices written (after activation fusion)
    fused: list = field(default_factory=list)
    extra_pad: tuple = (0, 0, 0, 0)  # top, bottom, left, right folded from a PAD
    act: tuple | None = None  # (lo, hi) override
    lut: np.ndarray | None = None


# -----------------------------------------------------------------------------------------------
# compiler
class _Compiler:
    def __init__(self, graph: Graph, config: Config, host_tail: bool, bands: bool = True):
        self.g = graph
        self.cfg = config
        self.host_tail = host_tail
        self.bands = bands
        self.warnings: list[str] = []
        self.consumers: dict[int, list[int]] = {}
        for op in graph.ops:
            for i in op.inputs:
                if i >= 0:
                    self.consumers.setdefault(i, []).append(op.index)
        self.producer = {o: op.index for op in graph.ops for o in op.outputs}

    def is_const(self, i: int) -> bool:
        return i >= 0 and self.g.tensors[i].data is not None

    # -------------------------------------------------------------- passes 1, 2
    def split_pre_post(self):
        g = self.g
        pre, frontier = [], {i: i for i in g.inputs}  # graph input -> current tensor
        cur = dict(frontier)
        for op in g.ops:
            if op.kind not in ("QUANTIZE", "TRANSPOSE"):
                continue
            src = op.inputs[0]
            owner = next((k for k, v in cur.items() if v == src), None)
            if owner is None or self.consumers.get(src) != [op.index] or src in g.outputs:
                continue
            if op.kind == "QUANTIZE" and g.tensors[src].dtype != "float32":
                continue
            if op.kind == "TRANSPOSE" and any(not self.is_const(i) for i in op.inputs[1:]):
                continue
            pre.append(op.index)
            cur[owner] = op.outputs[0]
        self.pre = pre
        self.npu_inputs = [cur[i] for i in g.inputs]
        post: list[int] = []
        if self.host_tail:
            post_set: set[int] = set()
            for op in reversed(g.ops):
                if op.kind not in HOST_TAIL_OPS or op.index in pre:
                    continue
                ok = all(
                    (o in g.outputs or self.consumers.get(o))
                    and all(c in post_set for c in self.consumers.get(o, []))
                    for o in op.outputs
                )
                if ok:
                    post_set.add(op.index)
            post = sorted(post_set)
        self.post = post
        post_outs = {o for k in post for o in g.ops[k].outputs}
        outs: list[int] = []
        for k in post:
            for i in g.ops[k].inputs:
                if i >= 0 and not self.is_const(i) and i not in post_outs and i not in outs:
                    outs.append(i)
        for o in g.outputs:
            if o not in post_outs and o not in outs:
                outs.append(o)
        self.npu_outputs = outs
        skip = set(pre) | set(post)
        self.nodes = [
            _Node(op, list(op.inputs), list(op.outputs)) for op in g.ops if op.index not in skip
        ]

    # -------------------------------------------------------------- pass 3: fold PAD
    def fold_pads(self):
        g = self.g
        by_op = {n.op.index: n for n in self.nodes}
        keep = []
        for n in self.nodes:
            op = n.op
            if op.kind != "PAD" or len(op.inputs) < 2 or not self.is_const(op.inputs[1]):
                keep.append(n)
                continue
            src, dst = op.inputs[0], op.outputs[0]
            pads = g.tensors[op.inputs[1]].data.astype(np.int64).reshape(-1, 2)
            readers = self.consumers.get(dst, [])
            ok = (
                len(g.tensors[src].shape) == 4
                and pads.shape[0] == 4
                and not pads[0].any()
                and not pads[3].any()
                and (pads >= 0).all()
                and readers
                and dst not in self.npu_outputs
                and g.tensors[src].dtype == "int8"
                and all(
                    r in by_op
                    and by_op[r].op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")
                    and by_op[r].op.inputs[0] == dst
                    and dst not in by_op[r].op.inputs[1:]
                    for r in readers
                )
            )
            if not ok:
                keep.append(n)
                continue
            for r in readers:
                rn = by_op[r]
                rn.ins[0] = src
                rn.extra_pad = (int(pads[1][0]), int(pads[1][1]), int(pads[2][0]), int(pads[2][1]))
                rn.fused.append(op.index)
        self.nodes = keep

    # -------------------------------------------------------------- pass 4: fuse activations
    def fuse_activations(self):
        g = self.g
        producers = {}
        for n in self.nodes:
            for o in n.outs:
                producers[o] = n
        keep = []
        for n in self.nodes:
            op = n.op
            if op.kind not in UNARY_LUT_OPS:
                keep.append(n)
                continue
            lut = _unary_lut(op, g)
            if lut is None:
                keep.append(n)
                continue
            src = n.ins[0]
            p = producers.get(src)
            fusable = (
                p is not None
                and p.op.kind
                in (
                    "CONV_2D",
                    "DEPTHWISE_CONV_2D",
                    "FULLY_CONNECTED",
                    "ADD",
                    "MUL",
                    "AVERAGE_POOL_2D",
                    "MAX_POOL_2D",
                    "MEAN",
                )
                and self.consumers.get(src) == [op.index]
                and src not in self.npu_outputs
                and len(p.outs) == 1
            )
            if fusable:
                lo, hi = p.act if p.act is not None else self.act_range(p)
                v = np.arange(lo, hi + 1)
                f = lut[v + 128].astype(np.int64)
                a, b = int(f[0]), int(f[-1])
                nlo, nhi = max(lo, a), min(hi, b)
                if nlo <= nhi and np.array_equal(f, np.clip(v, a, b)):
                    p.act = (nlo, nhi)
                    p.outs = [op.outputs[0]]
                    p.fused.append(op.index)
                    producers[op.outputs[0]] = p
                    continue
            n.lut = lut
            keep.append(n)
        self.nodes = keep

    def act_range(self, n: _Node) -> tuple[int, int]:
        g, op = self.g, n.op
        y = g.tensors[op.outputs[0]]
        if op.kind == "MEAN":
            return -128, 127
        if op.kind in ("ADD", "MUL"):
            s, z = _qp(y)
            return activation_range_quantized(op.options.get("activation", "NONE"), s, z)
        return activation_range(op.options.get("activation", "NONE"), y)

    # -------------------------------------------------------------- pass 5: lowering
    def lower(self):
        """Each node -> a list of items: ('conv', ...), ('compute', instr), ('store', [instrs]),
        ('host', call), ('alias', src, dst). Constants are collected in self.consts."""
        self.consts: list[tuple[str, bytes]] = []  # (key, blob), placed in order
        self.const_layer: list[int] = []  # layer index of each constant
        self.aliases: dict[int, int] = {}
        self.host_calls: list[dict] = []
        self.scratch_sizes: dict[int, int] = {}
        self.layers: list[LayerInfo] = []
        self.items: list[tuple] = []  # (layer_index, kind, payload)
        for n in self.nodes:
            li = len(self.layers)
            engine, items = self.lower_node(n)
            g = self.g
            macs = (
                g.op_macs(n.op)
                if n.op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
                else 0
            )
            self.layers.append(
                LayerInfo(
                    name=f"{n.op.index}:{n.op.kind}"
                    + "".join(f"+{g.ops[k].kind}" for k in n.fused),
                    kind=n.op.kind,
                    engine=engine,
                    ops=[n.op.index] + list(n.fused),
                    in_shapes=[
                        list(g.tensors[i].shape) for i in n.ins if i >= 0 and not self.is_const(i)
                    ],
                    out_shape=list(g.tensors[n.outs[0]].shape) if n.outs else [],
                    macs=int(macs),
                )
            )
            for it in items:
                self.items.append((li,) + it)

    def const(self, blob: bytes) -> int:
        """Register a constant blob; returns its key (index) for later address resolution."""
        self.consts.append(blob)
        self.const_layer.append(len(self.layers))
        return len(self.consts) - 1

    def lower_node(self, n: _Node):
        k = n.op.kind
        try:
            x0 = self.g.tensors[n.ins[0]] if n.ins and n.ins[0] >= 0 else None
            if (k in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN")
                    and x0 is not None and len(x0.shape) == 4 and x0.shape[0] != 1):
                raise _Fallback(f"batch {x0.shape[0]} (the NPU's windows run at batch 1)")
            if k in ("CONV_2D", "FULLY_CONNECTED"):
                return self.lower_conv(n)
            if k == "DEPTHWISE_CONV_2D":
                return self.lower_dw(n)
            if k == "MEAN":
                r = self.lower_mean(n)
                if r is not None:
                    return r
            if k in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
                return self.lower_pool(n)
            if k in ("ADD", "MUL"):
                r = self.lower_eltwise(n)
                if r is not None:
                    return r
            if k in ("RESHAPE", "SQUEEZE") and not self.is_const(n.ins[0]):
                self.aliases[n.outs[0]] = n.ins[0]
                return "alias", []
            if n.lut is not None:
                x = self.g.tensors[n.ins[0]]
                key = self.const(n.lut.astype(np.int8).tobytes())
                return "vector", [
                    (
                        "compute",
                        {
                            "opcode": Opcode.LUT,
                            "in_addr": ("t", n.ins[0]),
                            "out_addr": ("t", n.outs[0]),
                            "count": _nbytes(x),
                            "lut_addr": ("c", key),
                        },
                    )
                ]
            if k == "CONCATENATION":
                r = self.lower_concat(n)
                if r is not None:
                    return r
            if k == "RESIZE_NEAREST_NEIGHBOR":
                r = self.lower_resize(n)
                if r is not None:
                    return r
            if k == "PAD":
                r = self.lower_pad(n)
                if r is not None:
                    return r
            if k == "TRANSPOSE":
                r = self.lower_transpose(n)
                if r is not None:
                    return r
        except _Fallback as e:
            self.warnings.append(f"op {n.op.index} {k}: {e}; runs on the host")
        return self.lower_host(n)

    def lower_host(self, n: _Node):
        """A HOST call running the node's graph ops (folded PAD and fused activations included, in
        graph order) with the golden kernels."""
        g = self.g
        ops = sorted([n.op.index] + list(n.fused))
        made = {o for k in ops for o in g.ops[k].outputs}
        ins = []
        for k in ops:
            for i in g.ops[k].inputs:
                if i >= 0 and not self.is_const(i) and i not in made and i not in ins:
                    ins.append(i)
        for k in ops:
            get_prepare(g.ops[k].kind)  # UserError now, at compile time, for an unsupported op
        call = {"ops": ops, "inputs": ins, "outputs": list(n.outs)}
        self.host_calls.append(call)
        return "host", [("host", len(self.host_calls) - 1)]

    def _geometry(self, n: _Node, fh, fw, opcode=Opcode.CONV):
        """Conv geometry on the (possibly PAD-folded) input: (h, w, oh, ow, sh, sw, pt, pl)."""
        o = n.op.options
        if int(o.get("dilation_h", 1)) != 1 or int(o.get("dilation_w", 1)) != 1:
            raise _Fallback("dilation != 1")
        sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
        x = self.g.tensors[n.ins[0]]
        _, h, w, _ = x.shape
        et, eb, el, er = n.extra_pad
        hp, wp = h + et + eb, w + el + er
        pad = o.get("padding", "VALID")
        oh, ow = out_size(pad, hp, fh, sh), out_size(pad, wp, fw, sw)
        pt = same_padding(pad, hp, fh, sh, 1, oh)[0] + et
        pl = same_padding(pad, wp, fw, sw, 1, ow)[0] + el
        y = self.g.tensors[n.outs[0]]
        if tuple(y.shape[1:3]) != (oh, ow):
            raise UserError(
                f"{n.op.kind} op {n.op.index}: output shape {y.shape} does not match "
                f"the computed {oh}x{ow}"
            )
        if not fits(opcode, pad_top=pt, pad_left=pl, stride_h=sh, stride_w=sw, k_h=fh, k_w=fw):
            raise _Fallback("kernel, stride or padding beyond the instruction's range")
        return h, w, oh, ow, sh, sw, pt, pl

    def lower_conv(self, n: _Node):
        g, cfg = self.g, self.cfg
        op = n.op
        x_t, w_t = g.tensors[n.ins[0]], g.tensors[op.inputs[1]]
        b_t = g.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
        y_t = g.tensors[n.outs[0]]
        if w_t.data is None or x_t.dtype != "int8" or y_t.dtype != "int8":
            raise _Fallback("non-constant weights or non-int8 tensors")
        w_zp = int(w_t.quant.zero_point[0]) if w_t.quant is not None else 0
        if w_zp != 0:
            raise _Fallback("weight zero point != 0")
        in_scale, in_zp = _qp(x_t)
        out_scale, out_zp = _qp(g.tensors[op.outputs[0]])
        if op.kind == "CONV_2D":
            cout, fh, fw, cin = w_t.shape
            if cin != x_t.shape[3]:
                raise _Fallback("grouped convolution")
            h, w, oh, ow, sh, sw, pt, pl = self._geometry(n, fh, fw)
            w4 = w_t.data  # (Cout, KH, KW, Cin)
        else:  # FULLY_CONNECTED as a 1x1 conv over the batch rows
            cout, depth = w_t.shape
            rows = int(np.prod(x_t.shape, dtype=np.int64)) // depth
            fh = fw = sh = sw = 1
            h, w, oh, ow, pt, pl, cin = 1, rows, 1, rows, 0, 0, depth
            w4 = w_t.data.reshape(cout, 1, 1, depth)
        k = fh * fw * cin
        pointwise = (fh, fw, sh, sw, pt, pl, oh, ow) == (1, 1, 1, 1, 0, 0, h, w)
        kmax = wbuf_kmax(cfg)
        if not fits(Opcode.CONV, in_h=h, in_w=w, out_h=oh, out_w=ow, in_c=cin):
            if not pointwise:
                raise _Fallback("tensor dimensions beyond the instruction's range")
        mult, shift = per_channel_multipliers(in_scale, w_t.quant.scale, out_scale, cout)
        lo, hi = n.act if n.act is not None else self.act_range(n)
        bias = (
            b_t.data.astype(np.int64)
            if b_t is not None and b_t.data is not None
            else np.zeros(cout, np.int64)
        )
        C = cfg.array_cols
        w4 = np.ascontiguousarray(w4.astype(np.int8))
        wmat = w4.reshape(cout, -1).T  # (K, Cout) in (ky, kx, ci) order: the im2col order
        base = {"out_zp": out_zp, "act_min": lo, "act_max": hi}
        if pointwise:
            m = oh * ow
            folded = fold_input_zero_point(bias, wmat, in_zp)
            vm = dict(
                base,
                opcode=Opcode.VMATMUL,
                in_addr=("t", n.ins[0]),
                out_addr=("t", n.outs[0]),
                m=m,
                k=k,
                n=cout,
            )
            geo = dict(in_h=h, in_w=w, in_c=cin, out_h=oh, out_w=ow, k_h=1, k_w=1, acc=0)
            t = Timing(cfg)
            arr_cost = sum(
                instr_cost(dict(geo, opcode=Opcode.CONV, n_cols=min(C, cout - c0)), t)
                for c0 in range(0, cout, C)
            )
            vm_ok = fits(Opcode.VMATMUL, m=m, k=k, n=cout)
            small = m < t.R + t.C  # too few rows to keep the array's weight tiles busy
            if vm_ok and ((k > kmax and m < 4096) or (small and instr_cost(vm, t) < arr_cost)):
                vm["w_addr"] = ("c", self.const(np.ascontiguousarray(wmat.T).tobytes()))
                vm["p_addr"] = ("c", self.const(_params_blob(folded, mult, shift)))
                return "vector", [("compute", vm)]
            if not fits(Opcode.CONV, in_h=h, in_w=w, out_h=oh, out_w=ow, in_c=cin):
                raise _Fallback("matrix dimensions beyond the instruction's range")
        if op.kind == "CONV_2D":
            packed = self._pack_kernel_rows(n, w4, bias, mult, shift, in_zp, base,
                                            (h, w, oh, ow, sh, sw, pt, pl))
            if packed is not None:
                return "array", packed
        # K chunks of whole input channels when K exceeds the weight buffer: int32 partial sums
        per_chunk = max(1, kmax // (fh * fw))
        chunks = [(c, min(cin, c + per_chunk)) for c in range(0, cin, per_chunk)]
        acc_ref = 0
        if len(chunks) > 1:
            acc_ref = ("t", self.scratch(4 * oh * ow * C))
        items = []
        for c0 in range(0, cout, C):
            nc = min(C, cout - c0)
            for gi, (ch0, ch1) in enumerate(chunks):
                wch = w4[c0 : c0 + nc, :, :, ch0:ch1].reshape(nc, -1).T  # (K_chunk, nc)
                b0 = bias[c0 : c0 + nc] if gi == 0 else np.zeros(nc, np.int64)
                bch = fold_input_zero_point(b0, wch, in_zp)  # this chunk's share of the fold
                kc = wch.shape[0]
                wkey = self.const(np.ascontiguousarray(wch).tobytes())
                pkey = self.const(_params_blob(bch, mult[c0 : c0 + nc], shift[c0 : c0 + nc]))
                if len(chunks) == 1:
                    mode = AccMode.NONE
                else:
                    mode = (
                        AccMode.FIRST
                        if gi == 0
                        else AccMode.LAST
                        if gi == len(chunks) - 1
                        else AccMode.MID
                    )
                ins = {
                    "opcode": Opcode.CONV,
                    "in_addr": ("t", n.ins[0], ch0),
                    "out_addr": ("t", n.outs[0], c0),
                    "in_h": h,
                    "in_w": w,
                    "in_c": ch1 - ch0,
                    "in_pitch": cin if len(chunks) > 1 else 0,
                    "out_h": oh,
                    "out_w": ow,
                    "out_pitch": cout,
                    "n_cols": nc,
                    "k_h": fh,
                    "k_w": fw,
                    "stride_h": sh,
                    "stride_w": sw,
                    "pad_top": pt,
                    "pad_left": pl,
                    "in_zp": in_zp,
                    "acc": mode,
                    "acc_addr": acc_ref,
                    **base,
                }
                items.append(("conv", ins, (wkey, kc * nc), (pkey, nc * PARAM_RECORD_BYTES)))
        return "array", items

    def _pack_kernel_rows(self, n: _Node, w4, bias, mult, shift, in_zp, base, geo):
        """First-layer packing (few input channels, e.g. an RGB input): one array beat per kernel
        row instead of a K tile gathered from several SRAM pieces.

        The input is copied by the STORE unit into a framed buffer whose left/right padding
        columns hold ``in_zp`` (FILL + COPY), ``Wb`` = a multiple of ``P * stride_w`` wide. Over
        that buffer the conv is a ``k_h x 1`` conv with stride ``(stride_h, 1)`` whose "pixels"
        start every ``P * stride_w * in_c`` bytes (``in_pitch``) and are ``R`` bytes long
        (``in_c`` = R): a pixel holds the kernel rows of ``P`` horizontally adjacent output
        pixels (``((P - 1) * stride_w + k_w) * in_c`` bytes, overlapping) followed by bytes the
        weights multiply by zero. With ``P`` > 1 (few output channels: ``P * out_c <= C``) the
        array's columns hold the ``P`` pixels' output channels side by side, which is exactly
        their NHWC order, so one "pixel" of ``P * out_c`` outputs is written per beat. Vertical
        padding stays the conv's own (a padding row is in_zp on every lane, as the original taps
        are). Exact by construction; the cycle model picks P (or no packing) including the copy's
        cost. Returns the layer's items or None."""
        cfg = self.cfg
        R, C = cfg.array_rows, cfg.array_cols
        cout, fh, fw, cin = w4.shape
        h, w, oh, ow, sh, sw, pt, pl = geo
        if fw == 1 or fw * cin > R or cin >= R or fh * R > wbuf_kmax(cfg):
            return None
        t = Timing(cfg)
        geo_c = dict(opcode=Opcode.CONV, in_h=h, in_w=w, in_c=cin, in_pitch=0, out_h=oh,
                     out_w=ow, k_h=fh, k_w=fw, stride_h=sh, stride_w=sw, pad_top=pt,
                     pad_left=pl, acc=0)
        best = sum(instr_cost(dict(geo_c, n_cols=min(C, cout - c0)), t)
                   for c0 in range(0, cout, C))
        plan = None
        for P in range(1, max(1, C // cout) + 1):
            if ((P - 1) * sw + fw) * cin > R or ow % P:
                continue
            step = P * sw
            wb = step * -(-max((ow - 1) * sw + fw, pl + w) // step)  # buffer width (pixels)
            rb = wb * cin
            if not (fits(Opcode.CONV, in_w=wb // step, in_pitch=step * cin, out_w=ow // P)
                    and fits(Opcode.COPY, row_bytes=w * cin, rows=h)
                    and fits(Opcode.FILL, row_bytes=rb, rows=h)):
                continue
            store = []
            if pl:
                store.append({"opcode": Opcode.FILL, "dst_addr": 0, "row_bytes": pl * cin,
                              "rows": h, "dst_row_stride": rb, "value": in_zp})
            right = (wb - pl - w) * cin
            if right:
                store.append({"opcode": Opcode.FILL, "dst_addr": (pl + w) * cin,
                              "row_bytes": right, "rows": h, "dst_row_stride": rb,
                              "value": in_zp})
            store.append({"opcode": Opcode.COPY, "src_addr": 0, "dst_addr": pl * cin,
                          "row_bytes": w * cin, "rows": h, "planes": 1,
                          "src_row_stride": w * cin, "src_plane_stride": 0,
                          "dst_row_stride": rb, "dst_plane_stride": 0})
            geo_p = dict(geo_c, in_w=wb // step, in_c=R, in_pitch=step * cin, out_w=ow // P,
                         k_w=1, stride_w=1, pad_left=0)
            tiles = [(c0, min(C, cout - c0)) for c0 in range(0, cout, C)] if P == 1 else \
                [(0, cout)]
            cost = sum(instr_cost(x, t) for x in store) + sum(
                instr_cost(dict(geo_p, n_cols=P * nc), t) for _, nc in tiles)
            if cost < best:
                best, plan = cost, (P, rb, store, geo_p, tiles)
        if plan is None:
            return None
        P, rb, store, geo_p, tiles = plan
        buf = ("t", self.scratch(h * rb + R))  # + R: the last pixel's over-read
        for x in store:  # place the store instructions on the buffer and the input
            x["dst_addr"] = _off(buf, x["dst_addr"])
            if x["opcode"] == Opcode.COPY:
                x["src_addr"] = ("t", n.ins[0])
        items = [("store", store)]
        for c0, nc in tiles:
            # K = (ky, lane); column j = p * nc + co (output pixel p of the beat, channel co)
            # reads lane (p * stride_w + kx) * cin + ci
            wk = np.zeros((fh, R, P * nc), np.int8)
            wrow = w4[c0 : c0 + nc].reshape(nc, fh, fw * cin).transpose(1, 2, 0)
            for p in range(P):
                lo = p * sw * cin
                wk[:, lo : lo + fw * cin, p * nc : (p + 1) * nc] = wrow
            wch = wk.reshape(fh * R, P * nc)
            bch = fold_input_zero_point(np.tile(bias[c0 : c0 + nc], P), wch, in_zp)
            wkey = self.const(np.ascontiguousarray(wch).tobytes())
            pkey = self.const(_params_blob(bch, np.tile(mult[c0 : c0 + nc], P),
                                           np.tile(shift[c0 : c0 + nc], P)))
            ins = dict(geo_p, in_addr=buf, out_addr=("t", n.outs[0], c0),
                       out_pitch=P * cout, n_cols=P * nc, in_zp=in_zp, acc=AccMode.NONE,
                       acc_addr=0, **base)
            items.append(("conv", ins, (wkey, fh * R * P * nc),
                          (pkey, P * nc * PARAM_RECORD_BYTES)))
        return items

    def scratch(self, nbytes: int) -> int:
        """A scratch buffer (int32 partial sums) of the current layer, as a pseudo tensor id."""
        sid = len(self.g.tensors) + len(self.scratch_sizes)
        self.scratch_sizes[sid] = nbytes
        return sid

    def lower_dw(self, n: _Node):
        g = self.g
        op = n.op
        x_t, w_t = g.tensors[n.ins[0]], g.tensors[op.inputs[1]]
        b_t = g.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
        if w_t.data is None or x_t.dtype != "int8":
            raise _Fallback("non-constant weights or non-int8 tensors")
        w_zp = int(w_t.quant.zero_point[0]) if w_t.quant is not None else 0
        if w_zp != 0:
            raise _Fallback("weight zero point != 0")
        _, fh, fw, cout = w_t.shape
        cin = x_t.shape[3]
        dm = cout // cin
        if dm * cin != cout or not fits(Opcode.DWCONV, depth_mult=dm, in_c=cin):
            raise _Fallback("depth multiplier or channel count beyond the instruction's range")
        h, w, oh, ow, sh, sw, pt, pl = self._geometry(n, fh, fw, Opcode.DWCONV)
        in_scale, in_zp = _qp(x_t)
        out_scale, out_zp = _qp(g.tensors[op.outputs[0]])
        mult, shift = per_channel_multipliers(in_scale, w_t.quant.scale, out_scale, cout)
        lo, hi = n.act if n.act is not None else self.act_range(n)
        bias = (
            b_t.data.astype(np.int64)
            if b_t is not None and b_t.data is not None
            else np.zeros(cout, np.int64)
        )
        wts = np.ascontiguousarray(w_t.data[0].astype(np.int8))  # KH, KW, Cout
        bias = fold_input_zero_point(bias, wts.reshape(-1, cout), in_zp)
        wkey = self.const(wts.tobytes())
        pkey = self.const(_params_blob(bias, mult, shift))
        ins = {
            "opcode": Opcode.DWCONV,
            "in_addr": ("t", n.ins[0]),
            "out_addr": ("t", n.outs[0]),
            "w_addr": ("c", wkey),
            "p_addr": ("c", pkey),
            "in_h": h,
            "in_w": w,
            "in_c": cin,
            "out_h": oh,
            "out_w": ow,
            "depth_mult": dm,
            "k_h": fh,
            "k_w": fw,
            "stride_h": sh,
            "stride_w": sw,
            "pad_top": pt,
            "pad_left": pl,
            "in_zp": in_zp,
            "out_zp": out_zp,
            "act_min": lo,
            "act_max": hi,
        }
        return "vector", [("compute", ins)]

    def lower_mean(self, n: _Node):
        """MEAN over H and W of an NHWC int8 tensor -> DWCONV with all-ones weights (TFLM's
        QuantizedMeanOrSum: sum(x - zp_in) then MultiplyByQuantizedMultiplier(m / n) + zp_out)."""
        g = self.g
        op = n.op
        x_t = g.tensors[n.ins[0]]
        if (
            len(x_t.shape) != 4
            or x_t.shape[0] != 1
            or x_t.dtype != "int8"
            or not self.is_const(op.inputs[1])
        ):
            return None
        axes = sorted({int(a) % 4 for a in g.tensors[op.inputs[1]].data.reshape(-1)})
        _, h, w, c = x_t.shape
        if axes == [1, 2] and h == 1 and w == 1:
            return self._mean_1x1(n)
        if axes != [1, 2] or not fits(Opcode.DWCONV, k_h=h, k_w=w, in_h=h, in_w=w, in_c=c):
            return None
        si, zi = _qp(x_t)
        so, zo = _qp(g.tensors[op.outputs[0]])
        multiplier, shift = quantize_multiplier(si / so)
        cnt = h * w
        pre = min(cnt.bit_length() - 1, 32, 31 + shift)
        if pre < 0:
            return None
        multiplier = (multiplier << pre) // cnt
        shift -= pre
        lo, hi = n.act if n.act is not None else (-128, 127)
        wkey = self.const(np.ones(h * w * c, np.int8).tobytes())
        pkey = self.const(
            _params_blob(np.full(c, -zi * cnt), np.full(c, multiplier), np.full(c, shift))
        )
        ins = {
            "opcode": Opcode.DWCONV,
            "in_addr": ("t", n.ins[0]),
            "out_addr": ("t", n.outs[0]),
            "w_addr": ("c", wkey),
            "p_addr": ("c", pkey),
            "in_h": h,
            "in_w": w,
            "in_c": c,
            "out_h": 1,
            "out_w": 1,
            "depth_mult": 1,
            "k_h": h,
            "k_w": w,
            "stride_h": 1,
            "stride_w": 1,
            "pad_top": 0,
            "pad_left": 0,
            "in_zp": zi,
            "out_zp": zo,
            "act_min": lo,
            "act_max": hi,
        }
        return "vector", [("compute", ins)]

    def _mean_1x1(self, n: _Node):
        """MEAN over a 1x1 map (a global pool at the end of a small-input network) is a per-element
        int8 -> int8 function: one LUT whose table is the golden MEAN kernel (= TFLM's
        QuantizedMeanOrSum with n = 1) evaluated on all 256 codes, clamped to the fused
        activation. No host call mid-graph."""
        g, op = self.g, n.op
        x_t, a_t, y_t = (g.tensors[n.ins[0]], g.tensors[op.inputs[1]],
                         g.tensors[op.outputs[0]])
        if y_t.dtype != "int8" or x_t.quant is None or y_t.quant is None:
            return None
        xs = dataclasses.replace(x_t, index=0, shape=(1, 1, 1, 256), data=None)
        axs = dataclasses.replace(a_t, index=1)
        ys = dataclasses.replace(y_t, index=2, data=None,
                                 shape=(1, 1, 1, 256) if len(y_t.shape) == 4 else (1, 256))
        mini = Graph("mean1x1", [xs, axs, ys], [Op(0, "MEAN", [0, 1], [2], dict(op.options))],
                     [0], [2])
        fn = get_prepare("MEAN")(mini.ops[0], mini)
        codes = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 1, 256)
        table = np.asarray(fn([codes])[0], np.int8).reshape(256)
        lo, hi = n.act if n.act is not None else (-128, 127)
        key = self.const(np.clip(table, lo, hi).astype(np.int8).tobytes())
        return "vector", [("compute", {"opcode": Opcode.LUT, "in_addr": ("t", n.ins[0]),
                                       "out_addr": ("t", n.outs[0]), "count": _nbytes(x_t),
                                       "lut_addr": ("c", key)})]

    def lower_pool(self, n: _Node):
        g = self.g
        o = n.op.options
        x_t = g.tensors[n.ins[0]]
        if len(x_t.shape) != 4 or x_t.shape[0] != 1 or x_t.dtype != "int8":
            raise _Fallback("pooling needs a 1xHxWxC int8 input")
        fh, fw = int(o["filter_height"]), int(o["filter_width"])
        sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
        pad = o.get("padding", "VALID")
        _, h, w, c = x_t.shape
        oh, ow = out_size(pad, h, fh, sh), out_size(pad, w, fw, sw)
        pt, pl = same_padding(pad, h, fh, sh, 1, oh)[0], same_padding(pad, w, fw, sw, 1, ow)[0]
        if not fits(Opcode.POOL, k_h=fh, k_w=fw, stride_h=sh, stride_w=sw, pad_top=pt,
                    pad_left=pl, in_h=h, in_w=w, in_c=c, out_h=oh, out_w=ow):
            raise _Fallback("pool geometry beyond the instruction's range")
        lo, hi = n.act if n.act is not None else self.act_range(n)
        ins = {
            "opcode": Opcode.POOL,
            "mode": PoolMode.AVG if n.op.kind == "AVERAGE_POOL_2D" else PoolMode.MAX,
            "in_addr": ("t", n.ins[0]),
            "out_addr": ("t", n.outs[0]),
            "in_h": h,
            "in_w": w,
            "in_c": c,
            "out_h": oh,
            "out_w": ow,
            "k_h": fh,
            "k_w": fw,
            "stride_h": sh,
            "stride_w": sw,
            "pad_top": pt,
            "pad_left": pl,
            "act_min": lo,
            "act_max": hi,
        }
        return "vector", [("compute", ins)]

    def lower_eltwise(self, n: _Node):
        g = self.g
        op = n.op
        a, b = n.ins[0], n.ins[1]
        ta, tb, ty = g.tensors[a], g.tensors[b], g.tensors[op.outputs[0]]
        if any(t.dtype != "int8" or t.quant is None or t.quant.per_channel for t in (ta, tb, ty)):
            return None
        na, nb, ny = (int(np.prod(t.shape, dtype=np.int64)) for t in (ta, tb, ty))
        if na != ny:  # make a the full-size operand (both ops are commutative)
            a, b, ta, tb, na, nb = b, a, tb, ta, nb, na
        if na != ny or tuple(ta.shape) != tuple(ty.shape):
            return None
        period = _broadcast_period(tuple(ta.shape), tuple(tb.shape))
        b_data = tb.data
        if (period is None or not fits(Opcode.ELTWISE, b_period=period)) and self.is_const(b) \
                and ny <= 1 << 20:
            # a constant broadcast along leading axes (e.g. per-channel NCHW): stored expanded
            b_data, period = np.broadcast_to(np.asarray(tb.data), tuple(ty.shape)), 0
        if period is None or not fits(Opcode.ELTWISE, b_period=period):
            return None
        if self.is_const(a):
            return None
        s1, z1 = _qp(ta)
        s2, z2 = _qp(tb)
        so, zo = _qp(ty)
        lo, hi = n.act if n.act is not None else self.act_range(n)
        if op.kind == "ADD":
            left = 20
            twice_max = 2.0 * max(s1, s2)
            real_out = twice_max / ((1 << left) * so)
            if not 0.0 < real_out < 1.0:
                return None
            m1, sh1 = quantize_multiplier(s1 / twice_max)
            m2, sh2 = quantize_multiplier(s2 / twice_max)
            mo, sho = quantize_multiplier(real_out)
            p = [-z1, m1, sh1, -z2, m2, sh2, left, mo, sho, zo, lo, hi]
            mode = EltMode.ADD
        else:
            mo, sho = quantize_multiplier(s1 * s2 / so)
            p = [-z1, 0, 0, -z2, 0, 0, 0, mo, sho, zo, lo, hi]
            mode = EltMode.MUL
        assert len(p) == ELT_PARAM_WORDS
        pkey = self.const(np.asarray(p, "<i4").tobytes())
        b_ref = (
            ("c", self.const(np.ascontiguousarray(b_data, np.int8).tobytes()))
            if self.is_const(b)
            else ("t", b)
        )
        ins = {
            "opcode": Opcode.ELTWISE,
            "mode": mode,
            "b_period": period,
            "a_addr": ("t", a),
            "b_addr": b_ref,
            "out_addr": ("t", n.outs[0]),
            "count": ny,
            "p_addr": ("c", pkey),
        }
        return "vector", [("compute", ins)]

    def lower_concat(self, n: _Node):
        g = self.g
        op = n.op
        y = g.tensors[op.outputs[0]]
        if y.dtype != "int8" or op.options.get("activation", "NONE") != "NONE":
            return None
        rank = len(y.shape)
        axis = int(op.options.get("axis", 0)) % rank
        outer = int(np.prod(y.shape[:axis], dtype=np.int64))
        inner_y = int(np.prod(y.shape[axis:], dtype=np.int64))
        instrs = []
        off = 0
        for i in op.inputs:
            t = g.tensors[i]
            inner = int(np.prod(t.shape[axis:], dtype=np.int64))
            src = (
                ("c", self.const(np.asarray(t.data, np.int8).tobytes()))
                if self.is_const(i)
                else ("t", i)
            )
            instrs += _copy_rows(src, ("t", op.outputs[0], off), inner, outer, inner, inner_y)
            off += inner
        return "store", [("store", instrs)]

    def lower_resize(self, n: _Node):
        """RESIZE_NEAREST_NEIGHBOR by integer factors whose TFLite index map is plain replication
        (out index o reads o // f): f_h * f_w strided COPYs."""
        from models.kernels.shape import _nearest

        g = self.g
        op = n.op
        x, y = g.tensors[n.ins[0]], g.tensors[op.outputs[0]]
        if len(x.shape) != 4 or x.shape[0] != 1 or x.dtype != "int8":
            return None
        _, h, w, c = x.shape
        _, oh, ow, _ = y.shape
        align = bool(op.options.get("align_corners", False))
        half = bool(op.options.get("half_pixel_centers", False))
        ry, rx = _nearest(oh, h, align, half), _nearest(ow, w, align, half)
        if not (fits(Opcode.COPY, planes=h, rows=w, row_bytes=c)
                and fits(Opcode.COPY, planes=oh, row_bytes=ow * c)):
            return None
        fh, fw = max(1, oh // h), max(1, ow // w)
        if (oh % h or ow % w or not np.array_equal(ry, np.arange(oh) // fh)
                or not np.array_equal(rx, np.arange(ow) // fw)):
            return self._resize_general(n, ry, rx)
        instrs = []
        for dy in range(fh):
            for dx in range(fw):
                instrs.append(
                    {
                        "opcode": Opcode.COPY,
                        "src_addr": ("t", n.ins[0]),
                        "dst_addr": ("t", op.outputs[0], (dy * ow + dx) * c),
                        "row_bytes": c,
                        "rows": w,
                        "planes": h,
                        "src_row_stride": c,
                        "src_plane_stride": w * c,
                        "dst_row_stride": fw * c,
                        "dst_plane_stride": fh * ow * c,
                    }
                )
        return "store", [("store", instrs)]

    def _resize_general(self, n: _Node, ry: np.ndarray, rx: np.ndarray):
        """Nearest resize by any ratio (TFLite's index maps ``ry``, ``rx``), in two COPY passes
        on the store queue (which runs its instructions one after another): per run of output
        columns reading one input column, one COPY (rows = input rows, planes = the run,
        source plane stride 0) into an h x ow scratch; then per run of output rows reading one
        input row, one COPY replicating that scratch row (source row stride 0). Instructions:
        distinct columns + distinct rows; store cycles about h * ow + oh row transfers."""
        g = self.g
        x, y = g.tensors[n.ins[0]], g.tensors[n.outs[0]]
        _, h, w, c = x.shape
        _, oh, ow, _ = y.shape

        def runs(m):
            out, s0 = [], 0
            for i in range(1, len(m) + 1):
                if i == len(m) or m[i] != m[s0]:
                    out.append((s0, i - s0, int(m[s0])))
                    s0 = i
            return out

        rows_identity = oh == h and np.array_equal(ry, np.arange(h))
        tmp = ("t", n.outs[0]) if rows_identity else ("t", self.scratch(h * ow * c))
        instrs = []
        for o0, k, i in runs(rx):
            instrs.append(
                {
                    "opcode": Opcode.COPY,
                    "src_addr": ("t", n.ins[0], i * c),
                    "dst_addr": _off(tmp, o0 * c),
                    "row_bytes": c,
                    "rows": h,
                    "planes": k,
                    "src_row_stride": w * c,
                    "src_plane_stride": 0,
                    "dst_row_stride": ow * c,
                    "dst_plane_stride": c,
                }
            )
        if not rows_identity:
            for o0, k, i in runs(ry):
                instrs.append(
                    {
                        "opcode": Opcode.COPY,
                        "src_addr": _off(tmp, i * ow * c),
                        "dst_addr": ("t", n.outs[0], o0 * ow * c),
                        "row_bytes": ow * c,
                        "rows": k,
                        "planes": 1,
                        "src_row_stride": 0,
                        "src_plane_stride": 0,
                        "dst_row_stride": ow * c,
                        "dst_plane_stride": 0,
                    }
                )
        return "store", [("store", instrs)]

    def lower_pad(self, n: _Node):
        """PAD of a tensor of rank <= 4 (any axes, N included): FILL the output with its zero
        point, then one COPY (rows W, planes H) per input batch into the padded position."""
        g = self.g
        op = n.op
        x, y = g.tensors[n.ins[0]], g.tensors[op.outputs[0]]
        if (
            not self.is_const(op.inputs[1])
            or x.dtype != "int8"
            or len(x.shape) > 4
            or self.is_const(n.ins[0])
        ):
            return None
        pads = g.tensors[op.inputs[1]].data.astype(np.int64).reshape(-1, 2)
        if pads.shape[0] != len(x.shape) or (pads < 0).any():
            return None
        lead = 4 - len(x.shape)
        pads = np.concatenate([np.zeros((lead, 2), np.int64), pads])
        nb, h, w, c = (1,) * lead + tuple(x.shape)
        _, ho, wo, co = (int(d + a + b) for d, (a, b) in zip((nb, h, w, c), pads, strict=True))
        if not fits(Opcode.COPY, planes=h, rows=w, row_bytes=c):
            return None
        value = _qp(y)[1]
        instrs = _fill_rows(("t", op.outputs[0], 0), _nbytes(y), value)
        base = ((int(pads[0][0]) * ho + int(pads[1][0])) * wo + int(pads[2][0])) * co + int(
            pads[3][0]
        )
        for b in range(nb):
            instrs.append(
                {
                    "opcode": Opcode.COPY,
                    "src_addr": ("t", n.ins[0], b * h * w * c),
                    "dst_addr": ("t", op.outputs[0], base + b * ho * wo * co),
                    "row_bytes": c,
                    "rows": w,
                    "planes": h,
                    "src_row_stride": c,
                    "src_plane_stride": w * c,
                    "dst_row_stride": co,
                    "dst_plane_stride": wo * co,
                }
            )
        return "store", [("store", instrs)]

    def lower_transpose(self, n: _Node):
        """TRANSPOSE on the die: an identity permutation is a buffer alias; any other one is a
        few strided COPYs on the store queue (:func:`_transpose_copies`)."""
        g = self.g
        op = n.op
        x = g.tensors[n.ins[0]]
        if not self.is_const(op.inputs[1]) or x.dtype != "int8" or self.is_const(n.ins[0]):
            return None
        perm = [int(v) for v in np.asarray(g.tensors[op.inputs[1]].data).reshape(-1)]
        if perm == list(range(len(perm))):
            self.aliases[n.outs[0]] = n.ins[0]
            return "alias", []
        instrs = _transpose_copies(("t", n.ins[0]), ("t", n.outs[0]), tuple(x.shape), perm)
        return "store", [("store", instrs)]

    # -------------------------------------------------------------- pass 5b: row bands
    def band_items(self):
        """Split CONV (whole K per instruction), DWCONV and full-size ELTWISE layers into bands of
        output rows (each band an instruction reading only the input rows it needs), so the
        emitter can interleave one layer's vector work with another's convolution (hw.isa
        ``overlap``): a depthwise band needs only the producing conv's bands above it."""
        if not self.bands or not BAND_MAX or BAND_MAX < 2:
            return
        out = []
        k = 0
        items = self.items
        while k < len(items):
            li = items[k][0]
            e = k
            while e < len(items) and items[e][0] == li:
                e += 1
            group = items[k:e]
            out += self._band_layer(group)
            k = e
        self.items = out

    def _nbands(self, out_h: int, out_w: int, vector: bool = False) -> int:
        px = BAND_MIN_PIXELS_VECTOR if vector else BAND_MIN_PIXELS
        bmax = BAND_MAX_VECTOR if vector else BAND_MAX
        return max(1, min(bmax, out_h // 2, (out_h * out_w) // max(1, px)))

    @staticmethod
    def _row_band(ins, r0, r1, pitch, out_pitch, out_key="out_addr"):
        """A copy of a windowed instruction (CONV/DWCONV fields) producing output rows [r0, r1)."""
        sh, kh, pt, h, w = ins["stride_h"], ins["k_h"], ins["pad_top"], ins["in_h"], ins["in_w"]
        iy0 = r0 * sh - pt
        iy1 = (r1 - 1) * sh - pt + kh
        a, b = max(0, iy0), min(h, iy1)
        if b <= a:
            return None
        x = dict(ins)
        x.update(in_addr=_off(ins["in_addr"], a * w * pitch), in_h=b - a, pad_top=a - iy0,
                 out_h=r1 - r0)
        x[out_key] = _off(ins[out_key], r0 * ins["out_w"] * out_pitch)
        return x

    def _band_layer(self, group: list) -> list:
        kinds = {it[1] for it in group}
        if kinds == {"conv"}:
            ins0 = group[0][2]
            if any(it[2]["acc"] != AccMode.NONE or it[2]["out_h"] != ins0["out_h"]
                   for it in group):
                return group
            nb = self._nbands(ins0["out_h"], ins0["out_w"])
            if nb < 2:
                return group
            oh = ins0["out_h"]
            bands = [(oh * b // nb, oh * (b + 1) // nb) for b in range(nb)]
            new = []
            for r0, r1 in bands:
                for it in group:
                    x = it[2]
                    y = self._row_band(x, r0, r1, x["in_pitch"] or x["in_c"], x["out_pitch"])
                    if y is None:
                        return group
                    new.append((it[0], "conv", y) + tuple(it[3:]))
            return new
        if len(group) != 1 or group[0][1] != "compute":
            return group
        li, _, ins = group[0]
        op = ins["opcode"]
        if op == Opcode.DWCONV:
            if ins["out_h"] < 2 or ins["k_h"] > 7:
                return group
            nb = self._nbands(ins["out_h"], ins["out_w"], vector=True)
            if nb < 2:
                return group
            oh, c = ins["out_h"], ins["in_c"]
            new = []
            for b in range(nb):
                y = self._row_band(ins, oh * b // nb, oh * (b + 1) // nb, c, c * ins["depth_mult"])
                if y is None:
                    return group
                new.append((li, "compute", y))
            return new
        if op == Opcode.ELTWISE:
            ref = ins["out_addr"]
            if not (isinstance(ref, tuple) and ref[0] == "t" and len(ref) == 2):
                return group
            shape = self.g.tensors[ref[1]].shape
            if len(shape) != 4 or shape[0] != 1:
                return group
            _, hh, ww, cc = shape
            row = ww * cc
            per = ins["b_period"]
            if hh * row != ins["count"] or (per and row % per):
                return group
            nb = self._nbands(hh, ww, vector=True)
            if nb < 2:
                return group
            new = []
            for b in range(nb):
                r0, r1 = hh * b // nb, hh * (b + 1) // nb
                y = dict(ins, count=(r1 - r0) * row, a_addr=_off(ins["a_addr"], r0 * row),
                         out_addr=_off(ins["out_addr"], r0 * row))
                if not per:
                    y["b_addr"] = _off(ins["b_addr"], r0 * row)
                new.append((li, "compute", y))
            return new
        return group

    # -------------------------------------------------------------- pass 6: memory
    def root(self, t: int) -> int:
        while t in self.aliases:
            t = self.aliases[t]
        return t

    def plan_memory(self):
        g, cfg = self.g, self.cfg
        # constants
        addr = 0
        self.const_addr = []
        for blob in self.consts:
            self.const_addr.append(addr)
            addr = _align(addr + len(blob))
        const_end = addr
        # activation live ranges on item index
        n_items = len(self.items)
        first: dict[int, int] = {}
        last: dict[int, int] = {}

        def touch(t, k):
            r = self.root(t)
            first[r] = min(first.get(r, k), k)
            last[r] = max(last.get(r, k), k)

        for t in self.npu_inputs:
            touch(t, -1)
        for t in self.npu_outputs:
            touch(t, n_items)
        for k, it in enumerate(self.items):
            for t in _tensor_refs(it):
                touch(t, k)
            if it[1] == "host":
                call = self.host_calls[it[2]]
                for t in call["inputs"] + call["outputs"]:
                    touch(t, k)
        sizes = {}
        for r in first:
            nb = self.scratch_sizes[r] if r in self.scratch_sizes else _nbytes(g.tensors[r])
            sizes[r] = _align(max(1, nb))
        for t in list(self.aliases):
            r = self.root(t)
            if r in sizes:
                sizes[r] = max(sizes[r], _align(_nbytes(g.tensors[t])))
        placed: list[tuple[int, int, int, int]] = []  # (addr, size, first, last)
        self.act_addr: dict[int, int] = {}
        for r in sorted(first, key=lambda r: (-sizes[r], first[r])):
            a = const_end
            cands = sorted(
                (p for p in placed if not (p[3] < first[r] or last[r] < p[2])), key=lambda p: p[0]
            )
            for pa, ps, _, _ in cands:
                if a + sizes[r] <= pa:
                    break
                a = max(a, _align(pa + ps))
            placed.append((a, sizes[r], first[r], last[r]))
            self.act_addr[r] = a
        act_end = max([a + s for a, s, _, _ in placed], default=const_end)
        self.mem = {
            "const_bytes": const_end,
            "activation_bytes": act_end - const_end,
            "sram_bytes": cfg.sram_bytes,
        }

    def taddr(self, t: int) -> int:
        return self.act_addr[self.root(t)]

    def resolve(self, v):
        if isinstance(v, tuple):
            if v[0] == "t":
                return self.taddr(v[1]) + (v[2] if len(v) > 2 else 0)
            if v[0] == "c":
                return self.const_addr[v[1]] + (v[2] if len(v) > 2 else 0)
        return v

    def fix(self, ins: dict) -> dict:
        return {k: self.resolve(v) for k, v in ins.items()}

    # -------------------------------------------------------------- pass 7: schedule + emit
    def interleave(self):
        """Reorder the items so the conv unit and the vector unit work at the same time: within
        each run of conv/vector items (between STORE and HOST items) the conv items keep their
        order and so do the vector items; a greedy two-unit list schedule (the cycle model's
        costs) merges the two streams, placing an item only after every earlier item of the other
        unit whose SRAM footprint conflicts with it (and after the one ``INTERLEAVE_WINDOW``
        items back, a bound on the search), so the program computes exactly what the original
        order does."""
        t = Timing(self.cfg)
        out: list = []
        run: list = []

        def flush():
            if run:
                out.extend(self._merge(run, t))
                run.clear()

        for it in self.items:
            if it[1] in ("conv", "compute"):
                run.append(it)
            else:
                flush()
                out.append(it)
        flush()
        self.items = out

    def _resolved(self, it) -> dict:
        ins = self.fix(it[2])
        if ins["opcode"] == Opcode.CONV:
            ins.setdefault("wslot", 0)
            ins.setdefault("pslot", 0)
        return normalize([ins])[0]

    def _merge(self, run: list, t) -> list:
        n = len(run)
        res = [self._resolved(it) for it in run]
        unit = [compute_unit(x["opcode"]) for x in res]
        if any(u is None for u in unit) or len(set(unit)) < 2:
            return list(run)
        fps = [tuple([f for f in lst if f[0] == "sram"] for lst in _footprint(x)) for x in res]
        cost = [instr_cost(x, t) for x in res]

        def conflict(i, j):
            ri, wi = fps[i]
            rj, wj = fps[j]
            for x in wi:
                for y in rj + wj:
                    if x[1] < y[2] and y[1] < x[2]:
                        return True
            for x in ri:
                for y in wj:
                    if x[1] < y[2] and y[1] < x[2]:
                        return True
            return False

        seqs = [[i for i in range(n) if unit[i] == u] for u in (0, 1)]
        pos = [0] * n
        for u in (0, 1):
            for p, i in enumerate(seqs[u]):
                pos[i] = p
        # dep[i]: position in the other unit's stream that must be placed before item i
        dep = [-1] * n
        W = INTERLEAVE_WINDOW
        for i in range(n):
            other = seqs[1 - unit[i]]
            # other-unit items before i in the original order: positions [0, hi)
            lo_, hi = 0, len(other)
            while lo_ < hi:
                mid = (lo_ + hi) // 2
                if other[mid] < i:
                    lo_ = mid + 1
                else:
                    hi = mid
            hi = lo_
            d = hi - 1 - W if hi > W else -1
            for p in range(hi - 1, max(-1, hi - 1 - W), -1):
                if conflict(i, other[p]):
                    d = p
                    break
            dep[i] = d
        rate = [read_rate(x, t) for x in res]
        ptr = [0, 0]
        free = [0, 0]
        last = [None, None]
        tissue = 0
        order = []
        while ptr[0] < len(seqs[0]) or ptr[1] < len(seqs[1]):
            best = None
            for u in (0, 1):
                if ptr[u] >= len(seqs[u]):
                    continue
                i = seqs[u][ptr[u]]
                if dep[i] >= ptr[1 - u]:
                    continue
                o = last[1 - u]
                s = max(tissue, free[u])
                if o is not None and conflict(i, o):
                    s = max(s, free[1 - u])
                if best is None or (s, i) < best[0]:
                    best = ((s, i), u, i)
            (s, _), u, i = best
            order.append(i)
            ptr[u] += 1
            e = s + cost[i]
            o = last[1 - u]
            if o is not None and free[1 - u] > s and t.shared_read_port:  # one read port
                di, do = _contend(cost[i], rate[i], free[1 - u] - s, rate[o])
                e = s + di
                free[1 - u] = s + do
            free[u] = e
            last[u] = i
            tissue = s
        return [run[i] for i in order]

    def set_overlap(self, prog: list[dict]) -> None:
        """overlap = 1 on every CONV / vector instruction that meets hw.isa's contract against
        the last preceding COMPUTE instruction of the other unit (sim.isa_sim.overlap_conflict)."""
        last: list = [None, None]
        for ins in prog:
            op = ins["opcode"]
            if op in (Opcode.SYNC, Opcode.DONE) or QUEUE_OF[op] == Queue.COMPUTE and \
                    compute_unit(op) is None:
                last = [None, None]
                continue
            if QUEUE_OF[op] != Queue.COMPUTE:
                continue
            u = compute_unit(op)
            o = last[1 - u]
            if o is not None:
                a, b = normalize([ins, o])
                ok = overlap_conflict(a, b) is None
                ins["overlap"] = int(ok)
            last[u] = ins

    def emit(self):
        prog: list[dict] = []
        layer_of: list[int] = []
        if INTERLEAVE:
            self.interleave()
        loads = [it for it in self.items if it[1] == "conv"]
        nloads = len(loads)
        emitted = 0

        def put(ins, layer):
            prog.append(ins)
            layer_of.append(layer)

        def emit_load(j):
            layer, _, _, (wk, wn), (pk, pn) = loads[j]
            put(
                {
                    "opcode": Opcode.LOAD,
                    "buf": BufSel.WBUF,
                    "slot": j % 2,
                    "sram_addr": self.const_addr[wk],
                    "nbytes": wn,
                    "pop_next": int(j >= 2),
                },
                layer,
            )
            put(
                {
                    "opcode": Opcode.LOAD,
                    "buf": BufSel.PBUF,
                    "slot": j % 2,
                    "sram_addr": self.const_addr[pk],
                    "nbytes": pn,
                    "push_next": 1,
                },
                layer,
            )

        j = 0
        for it in self.items:
            layer, kind = it[0], it[1]
            if kind == "conv":
                while emitted <= min(j + 1, nloads - 1):
                    emit_load(emitted)
                    emitted += 1
                ins = self.fix(it[2])
                ins.update(wslot=j % 2, pslot=j % 2, pop_prev=1, push_prev=int(j + 2 < nloads))
                put(ins, layer)
                j += 1
            elif kind == "compute":
                put(self.fix(it[2]), layer)
            elif kind == "host":
                put({"opcode": Opcode.HOST, "call": it[2]}, layer)
            elif kind == "store":
                instrs = [self.fix(x) for x in it[2]]
                if not instrs:
                    continue
                put({"opcode": Opcode.NOP, "push_next": 1}, layer)
                instrs[0]["pop_prev"] = 1
                instrs[-1]["push_prev"] = 1
                for x in instrs:
                    put(x, layer)
                put({"opcode": Opcode.NOP, "pop_next": 1}, layer)
        put({"opcode": Opcode.DONE}, -1)
        if INTERLEAVE:
            self.set_overlap(prog)
        try:
            self.program = decode_program(encode_program(prog))  # validates every field's range
        except ValueError as e:
            raise UserError(
                f"model '{self.g.name}' needs an instruction field beyond the ISA's range ({e})"
            ) from None
        self.layer_of = layer_of

    # -------------------------------------------------------------- driver
    def check_fits(self, prog_bytes: int) -> None:
        """UserError when weights, activations and ``prog_bytes`` of program exceed the SRAM."""
        g, cfg = self.g, self.cfg
        total = _align(self.mem["const_bytes"] + self.mem["activation_bytes"]) + prog_bytes
        if total > cfg.sram_bytes:
            raise UserError(
                f"model '{g.name}' needs {total:,} bytes of SRAM"
                f"{' or more' if not prog_bytes else ''} (weights/tables "
                f"{self.mem['const_bytes']:,}, activations {self.mem['activation_bytes']:,}, "
                f"program {prog_bytes:,}) but preset '{cfg.name}' has {cfg.sram_bytes:,}; use a "
                "larger preset or a smaller model"
            )

    def run(self) -> Compiled:
        g, cfg = self.g, self.cfg
        self.split_pre_post()
        self.fold_pads()
        self.fuse_activations()
        self.lower()
        self.band_items()
        self.plan_memory()
        self.check_fits(0)  # before emit: a model far too large must not fail as a field overflow
        self.emit()
        prog_addr = _align(self.mem["const_bytes"] + self.mem["activation_bytes"])
        prog_bytes = len(self.program) * INSTR_BYTES
        total = prog_addr + prog_bytes
        self.mem.update(program_bytes=prog_bytes, program_addr=prog_addr, total_bytes=total)
        if total > cfg.sram_bytes:
            raise UserError(
                f"model '{g.name}' needs {total:,} bytes of SRAM (weights/tables "
                f"{self.mem['const_bytes']:,}, activations {self.mem['activation_bytes']:,}, "
                f"program {prog_bytes:,}) but preset '{cfg.name}' has {cfg.sram_bytes:,}; use a "
                f"larger preset or a smaller model"
            )
        image = [(self.const_addr[k], blob) for k, blob in enumerate(self.consts) if blob]
        image.append((prog_addr, encode_program(self.program)))

        def desc(t: int) -> TensorDesc:
            tt = g.tensors[t]
            s, z = _qp(tt)
            return TensorDesc(t, tt.name, self.taddr(t), tuple(tt.shape), tt.dtype, s, z)

        # per-layer SRAM use
        for li, layer in enumerate(self.layers):
            layer.const_bytes = sum(
                len(b) for b, k in zip(self.consts, self.const_layer, strict=True) if k == li
            )
            layer.act_bytes = sum(
                _nbytes(g.tensors[i])
                for i in [*self.nodes[li].ins[:1], *self.nodes[li].outs]
                if i >= 0
            )
        host_ops = set(self.pre) | set(self.post) | {k for c in self.host_calls for k in c["ops"]}
        keep_const = {i for k in host_ops for i in g.ops[k].inputs if i >= 0}
        host_graph = Graph(
            g.name,
            [
                t if t.index in keep_const or t.data is None else dataclasses.replace(t, data=None)
                for t in g.tensors
            ],
            list(g.ops),
            list(g.inputs),
            list(g.outputs),
        )
        calls = []
        for c in self.host_calls:
            calls.append(
                {
                    "ops": c["ops"],
                    "inputs": [_iodesc(desc(t)) for t in c["inputs"]],
                    "outputs": [_iodesc(desc(t)) for t in c["outputs"]],
                }
            )
        ins = [desc(t) for t in self.npu_inputs]
        return Compiled(
            config=cfg,
            program=self.program,
            image=image,
            inputs=ins,
            outputs=[desc(t) for t in self.npu_outputs],
            graph_inputs=[
                {
                    "tensor": i,
                    "name": g.tensors[i].name,
                    "shape": list(g.tensors[i].shape),
                    "dtype": g.tensors[i].dtype,
                }
                for i in g.inputs
            ],
            graph_outputs=list(g.outputs),
            host_pre=self.pre,
            host_post=self.post,
            host_calls=calls,
            layers=self.layers,
            layer_of=self.layer_of,
            memory=self.mem,
            input_norm=_input_norm(ins[0] if ins else None),
            host_graph=host_graph,
            macs=int(g.macs()),
            warnings=self.warnings,
        )


class _Fallback(Exception):
    """The op cannot be lowered to the NPU with these parameters: run it on the host."""


def _broadcast_period(sa: tuple, sb: tuple) -> int | None:
    """b_period for b broadcast against a (row-major): 0 same shape, k if b varies only along the
    trailing k elements of a and is constant (size 1) on every leading axis; None otherwise."""
    if sa == sb:
        return 0
    nb = int(np.prod(sb, dtype=np.int64))
    if nb == 1:
        return 1
    sb = (1,) * (len(sa) - len(sb)) + tuple(sb)
    if len(sb) != len(sa):
        return None
    k = len(sa)
    while k > 0 and sb[k - 1] == sa[k - 1]:
        k -= 1
    if any(d != 1 for d in sb[:k]):
        return None
    return int(np.prod(sa[k:], dtype=np.int64))


def _iodesc(d: TensorDesc) -> dict:
    return {"tensor": d.tensor, "addr": d.addr, "shape": list(d.shape), "dtype": d.dtype}


def _tensor_refs(item) -> list[int]:
    kind = item[1]
    out = []
    if kind in ("conv", "compute"):
        vals = [item[2]]
    elif kind == "store":
        vals = item[2]
    else:
        return out
    for ins in vals:
        for v in ins.values():
            if isinstance(v, tuple) and v[0] == "t":
                out.append(v[1])
    return out


def _copy_rows(src, dst, row_bytes, rows, src_stride, dst_stride) -> list[dict]:
    """COPY instructions moving ``rows`` rows (chunked to the 16-bit fields)."""
    out = []
    if row_bytes <= 0 or rows <= 0:
        return out
    if row_bytes > 65535:  # split each row into chunks
        for r in range(rows):
            for b0 in range(0, row_bytes, 65535):
                nb = min(65535, row_bytes - b0)
                out += _copy_rows(
                    _off(src, r * src_stride + b0), _off(dst, r * dst_stride + b0), nb, 1, nb, nb
                )
        return out
    for r0 in range(0, rows, 65535):
        nr = min(65535, rows - r0)
        out.append(
            {
                "opcode": Opcode.COPY,
                "src_addr": _off(src, r0 * src_stride),
                "dst_addr": _off(dst, r0 * dst_stride),
                "row_bytes": row_bytes,
                "rows": nr,
                "planes": 1,
                "src_row_stride": src_stride,
                "src_plane_stride": 0,
                "dst_row_stride": dst_stride,
                "dst_plane_stride": 0,
            }
        )
    return out


def _transpose_copies(src, dst, shape: tuple, perm: list) -> list[dict]:
    """COPY instructions writing ``transpose(src, perm)`` (int8, row-major) to ``dst``.

    Output axes of size 1 are dropped and neighbours that are contiguous in the source too are
    merged; if the innermost remaining axis is contiguous in the source it becomes ``row_bytes``
    (whole runs per row), otherwise rows are single bytes. The two innermost remaining axes are
    ``rows`` and ``planes`` of one COPY; any outer axis repeats the COPY at its offsets. A COPY
    costs one store cycle per row of up to ``store_bytes_per_cycle`` bytes (docs/isa.md)."""
    r = len(shape)
    st_in = [math.prod(shape[a + 1 :]) for a in range(r)]
    out = [shape[p] for p in perm]
    axes = [(out[j], st_in[perm[j]], math.prod(out[j + 1 :])) for j in range(r) if out[j] > 1]
    merged: list[tuple[int, int, int]] = []
    for nn, ss, ds in axes:
        if merged and merged[-1][1] == ss * nn and merged[-1][2] == ds * nn:
            merged[-1] = (merged[-1][0] * nn, ss, ds)
        else:
            merged.append((nn, ss, ds))
    row_bytes = 1
    if merged and merged[-1][1] == 1:
        row_bytes = merged.pop()[0]
    if row_bytes > 65535:
        raise _Fallback("a transpose run longer than a COPY row")
    while len(merged) < 2:
        merged.insert(0, (1, 0, 0))
    (np_, sps, dps), (nr, srs, drs) = merged[-2], merged[-1]
    if np_ > 65535 or nr > 65535:
        raise _Fallback("a transpose with more rows or planes than a COPY holds")
    outer = merged[:-2]
    instrs = []
    for idx in np.ndindex(*[a[0] for a in outer]) if outer else [()]:
        so = sum(i * a[1] for i, a in zip(idx, outer, strict=True))
        do = sum(i * a[2] for i, a in zip(idx, outer, strict=True))
        instrs.append(
            {
                "opcode": Opcode.COPY,
                "src_addr": _off(src, so),
                "dst_addr": _off(dst, do),
                "row_bytes": row_bytes,
                "rows": nr,
                "planes": np_,
                "src_row_stride": srs,
                "src_plane_stride": sps,
                "dst_row_stride": drs,
                "dst_plane_stride": dps,
            }
        )
    return instrs


def _fill_rows(dst, nbytes, value) -> list[dict]:
    out = []
    chunk = 65535
    rows = nbytes // chunk
    if rows:
        out.append(
            {
                "opcode": Opcode.FILL,
                "dst_addr": dst,
                "row_bytes": chunk,
                "rows": rows,
                "dst_row_stride": chunk,
                "value": value,
            }
        )
    rest = nbytes - rows * chunk
    if rest:
        out.append(
            {
                "opcode": Opcode.FILL,
                "dst_addr": _off(dst, rows * chunk),
                "row_bytes": rest,
                "rows": 1,
                "dst_row_stride": rest,
                "value": value,
            }
        )
    return out


def _off(ref, k):
    if isinstance(ref, tuple):
        return ref[:2] + ((ref[2] if len(ref) > 2 else 0) + k,)
    return ref + k


def _input_norm(d: TensorDesc | None, input_range=None) -> dict:
    """ISP normalization for the NPU input (models.isp): q = ((u*mul + half) >> shift) + offset.

    Default (``input_range`` None): the IMX500 convention of SPEC section 5, an 8-bit value v maps
    to v - 128 (the real range [-1, 1] of a [-1, 1] model such as person_detect). With a declared
    real range (lo, hi) for u = 0..255: q = round(u * (hi - lo) / (255 * scale)) +
    round(lo / scale + zp), the ratio as a 16-bit multiplier with the largest shift <= 23 that
    fits."""
    ch = int(d.shape[-1]) if d is not None and len(d.shape) == 4 else 1
    size = [int(d.shape[2]), int(d.shape[1])] if d is not None and len(d.shape) == 4 else None
    if input_range is None or d is None:
        return {
            "mul": [1] * ch,
            "shift": [0] * ch,
            "offset": [-128] * ch,
            "channels": ch,
            "range": None,
            "size": size,
        }
    lo, hi = (float(v) for v in input_range)
    if not hi > lo:
        raise UserError(f"bad input range {lo:g},{hi:g}: give LO,HI with LO < HI")
    ratio = (hi - lo) / (255.0 * d.scale)
    shift = 23
    while shift > 0 and round(ratio * (1 << shift)) > 65535:
        shift -= 1
    mul = int(round(ratio * (1 << shift)))
    off = int(math.floor(lo / d.scale + d.zero_point + 0.5))
    if not (0 < mul <= 65535 and -32768 <= off <= 32767):
        raise UserError(
            f"input range {lo:g},{hi:g} cannot be mapped to the input quantization "
            f"(scale {d.scale:g}, zero point {d.zero_point}) by the ISP"
        )
    return {
        "mul": [mul] * ch,
        "shift": [shift] * ch,
        "offset": [off] * ch,
        "channels": ch,
        "range": [lo, hi],
        "size": size,
    }


def compile_graph(
    graph: Graph, config: Config | str = "default", *, host_tail: bool = True, input_range=None
) -> Compiled:
    """Compile a graph for a preset. ``input_range`` (lo, hi): the real range of the 8-bit pixels
    for the ISP normalization (default: v - 128). Raises UserError for models that do not fit or
    cannot run."""
    cfg = preset(config)
    for t in graph.tensors:
        if len(t.shape) > 4:
            raise UserError(
                f"model '{graph.name}': tensor {t.index} '{t.name}' has {len(t.shape)} dimensions "
                f"{t.shape}; the NPU compiler handles tensors of up to 4"
            )
    c = _Compiler(graph, cfg, host_tail).run()
    if BAND_MAX and BAND_MAX >= 2:
        # row bands cost per-instruction overhead; keep them only where the cycle model says the
        # overlap they make possible wins (networks with little vector work run unbanded)
        plain = _Compiler(graph, cfg, host_tail, bands=False).run()
        if len(plain.program) != len(c.program) and _model_cycles(plain) <= _model_cycles(c):
            c = plain
    if input_range is not None:
        c.input_norm = _input_norm(c.inputs[0] if c.inputs else None, input_range)
    return c


def _model_cycles(compiled: Compiled) -> int:
    from sim.isa_sim import schedule

    try:
        return schedule(compiled.program, compiled.config, check_hazards=False,
                        host_calls=compiled.host_calls).total
    except Exception:  # a malformed schedule is reported by the normal paths, not here
        return 1 << 62


def estimate(compiled: Compiled) -> dict:
    """Cycle-model estimate (no data needed): total cycles, utilization and per-layer figures."""
    from sim.isa_sim import schedule

    sched = schedule(compiled.program, compiled.config, host_calls=compiled.host_calls)
    return layer_stats(compiled, sched)


def layer_stats(compiled: Compiled, sched) -> dict:
    """Per-layer cycles: the span from the previous layer's last end to this layer's last end."""
    cfg = compiled.config
    n_layers = len(compiled.layers)
    last_end = [0] * n_layers
    busy = [0] * n_layers
    for j, li in enumerate(compiled.layer_of):
        if li >= 0:
            last_end[li] = max(last_end[li], sched.end[j])
            busy[li] += sched.end[j] - sched.start[j]
    rows = []
    prev = 0
    for li, layer in enumerate(compiled.layers):
        end = max(last_end[li], prev)
        if li == n_layers - 1:
            end = max(end, sched.total)  # the final DONE belongs to the last layer
        cyc = end - prev
        prev = end
        rows.append(
            {
                "layer": layer.name,
                "kind": layer.kind,
                "engine": layer.engine,
                "out_shape": layer.out_shape,
                "macs": layer.macs,
                "cycles": cyc,
                "utilization": (layer.macs / (cyc * cfg.pes)) if cyc else 0.0,
                "const_bytes": layer.const_bytes,
                "act_bytes": layer.act_bytes,
            }
        )
    total = sched.total
    return {
        "cycles": total,
        "macs": compiled.macs,
        "pes": cfg.pes,
        "utilization": compiled.macs / (total * cfg.pes) if total else 0.0,
        "ms": total / (cfg.clock_mhz * 1e3),
        "busy": sched.busy,
        "layers": rows,
    }

"""The NPU instruction set: one definition shared by the compiler, the functional ISA simulator and
the RTL decoder.

Machine model (contract):

- **SRAM**: the on-die SRAM, one byte-addressed space of ``config.sram_bytes`` bytes holding the
  program, the weights, the per-channel requant tables and every activation tensor (NHWC, dense,
  int8 unless a host op says otherwise). Addresses are 24 bits.
- **Local buffers** of the array, each with two slots (double buffering): ``WBUF`` holds the weights
  of one column tile, K x n_cols int8 row-major (K = k_h * k_w * in_c in (ky, kx, ci) order, the
  on-the-fly im2col order); ``PBUF`` holds that tile's per-channel parameters, n_cols records of
  three little-endian int32 (bias, multiplier, shift). Sizes: :func:`buffer_sizes`.
- **Three queues** (as TVM VTA): LOAD (``LOAD``: SRAM -> WBUF/PBUF), COMPUTE (``CONV`` on the
  systolic array; ``DWCONV``, ``POOL``, ``ELTWISE``, ``LUT``, ``VMATMUL`` on the depthwise/vector
  unit; ``HOST`` calls the host), STORE (``COPY``, ``FILL``: SRAM -> SRAM data movement). Each queue
  executes its instructions in program order; queues run concurrently and synchronise only through
  **dependency tokens**: four flags per instruction, ``pop_prev``/``pop_next`` (wait for and consume
  a token from the previous/next queue in the order LOAD < COMPUTE < STORE) and
  ``push_prev``/``push_next`` (send one after finishing). Pops happen before the instruction starts,
  pushes after it ends. ``SYNC`` waits for all queues; ``DONE`` ends the program.
- **Two compute units, one COMPUTE queue**: ``CONV`` runs on the conv unit (the array), the vector
  ops on the vector unit. The queue issues in program order; an instruction with the header flag
  ``overlap`` = 0 issues only when *both* units are idle (the previous COMPUTE instruction has
  completed, whatever its unit). With ``overlap`` = 1 a ``CONV`` or vector op issues as soon as
  its *own* unit is idle (and its tokens are there) while the other unit may still run the last
  COMPUTE instruction issued to it; so at most two COMPUTE instructions are in flight, one per
  unit, and they may complete out of program order. ``NOP`` and ``HOST`` ignore the flag (they
  wait for both units idle). Contract for ``overlap`` = 1 (the compiler checks it, the cycle
  model's hazard check enforces it): (a) the instruction's footprint (SRAM bytes, WBUF/PBUF
  slots) does not conflict with that of the last preceding COMPUTE instruction of the other unit
  (at least one writer); (b) the two do not both push a token to the same neighbour queue, so
  the pushes to each neighbour still happen in program order (tokens are counters).
- **Arithmetic** is TFLite int8 (SPEC section 4): ``CONV``/``DWCONV`` accumulate ``x * w`` in int32
  (wrapping) over the window, where taps outside the input (padding) read ``in_zp``, add the bias
  (the compiler folds the input zero point in: ``bias - in_zp * sum(w)``, as hw/gemm.py expects),
  apply MultiplyByQuantizedMultiplier(acc, mult, shift), add ``out_zp`` and clamp to
  [act_min, act_max]. This equals TFLite's ``sum((x - in_zp) * w) + bias`` modulo 2**32.

Every instruction is :data:`INSTR_BITS` = 256 bits wide, little-endian: bit 0 of the instruction is
bit 0 of byte 0. The first 16 bits are the common header (opcode, the four dependency flags and
``overlap``); the per-opcode fields follow (:data:`LAYOUTS`). :func:`encode` / :func:`decode`
pack and unpack on the host; ``python -m hw.isa --doc`` writes docs/isa.md from these definitions.
"""

from __future__ import annotations

import sys

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, enum

__all__ = [
    "INSTR_LAYOUT",
    "Opcode",
    "Queue",
    "BufSel",
    "AccMode",
    "PoolMode",
    "EltMode",
    "INSTR_BITS",
    "INSTR_BYTES",
    "LAYOUTS",
    "HEADER",
    "QUEUE_OF",
    "encode",
    "decode",
    "encode_program",
    "field_range",
    "fits",
    "decode_program",
    "Timing",
    "buffer_sizes",
    "PARAM_RECORD_BYTES",
    "ELT_PARAM_WORDS",
    "doc_markdown",
    "WBUF_KMAX",
    "wbuf_kmax",
]

INSTR_BITS = 256
INSTR_BYTES = INSTR_BITS // 8
ADDR_BITS = 24
#: Upper bound of the reduction depth K = k_h * k_w * in_c of one CONV (WBUF slot depth); the
#: preset's own bound is :func:`wbuf_kmax`.
WBUF_KMAX = 8192
#: Bytes per output channel in a PBUF slot / DWCONV parameter table: int32 bias, multiplier, shift.
PARAM_RECORD_BYTES = 12
#: int32 words of an ELTWISE parameter block (see :data:`ELT_PARAM_FIELDS`).
ELT_PARAM_FIELDS = (
    "a_offset",
    "a_mult",
    "a_shift",
    "b_offset",
    "b_mult",
    "b_shift",
    "left_shift",
    "out_mult",
    "out_shift",
    "out_offset",
    "act_min",
    "act_max",
)
ELT_PARAM_WORDS = len(ELT_PARAM_FIELDS)


class Opcode(enum.Enum, shape=5):
    """Instruction opcodes."""

    NOP = 0  #: do nothing (may carry dependency flags); COMPUTE queue
    LOAD = 1  #: SRAM -> WBUF/PBUF slot; LOAD queue
    CONV = 2  #: conv / GEMM on the systolic array with on-the-fly im2col; COMPUTE queue
    DWCONV = 3  #: depthwise conv on the vector unit; COMPUTE queue
    POOL = 4  #: average / max pooling on the vector unit; COMPUTE queue
    ELTWISE = 5  #: elementwise ADD / MUL with requant on the vector unit; COMPUTE queue
    LUT = 6  #: int8 -> int8 table lookup (activations, requant) on the vector unit; COMPUTE queue
    COPY = 7  #: 2-D strided SRAM -> SRAM copy of byte rows; STORE queue
    FILL = 8  #: 1-D strided fill of byte rows with a constant; STORE queue
    HOST = 9  #: call the host to run one graph op on SRAM tensors (fallback); COMPUTE queue
    SYNC = 10  #: wait until every queue is idle
    DONE = 11  #: end of program: wait for all queues, raise done
    VMATMUL = 12  #: small-M matrix product (GEMV, FC at batch 1) on the vector unit; COMPUTE queue


class Queue(enum.Enum, shape=2):
    LOAD = 0
    COMPUTE = 1
    STORE = 2
    ALL = 3


class BufSel(enum.Enum, shape=2):
    WBUF = 0
    PBUF = 1


class PoolMode(enum.Enum, shape=1):
    AVG = 0
    MAX = 1


class AccMode(enum.Enum, shape=2):
    """CONV accumulation across instructions (a reduction deeper than the weight buffer)."""

    NONE = 0  #: whole K in this instruction: requantize and write int8 outputs
    FIRST = 1  #: write the int32 sums (with this chunk's bias) to acc_addr, no output
    MID = 2  #: add the int32 sums at acc_addr, write them back, no output
    LAST = 3  #: add the int32 sums at acc_addr, requantize and write int8 outputs


class EltMode(enum.Enum, shape=2):
    ADD = 0
    MUL = 1


QUEUE_OF = {
    Opcode.NOP: Queue.COMPUTE,
    Opcode.LOAD: Queue.LOAD,
    Opcode.CONV: Queue.COMPUTE,
    Opcode.DWCONV: Queue.COMPUTE,
    Opcode.POOL: Queue.COMPUTE,
    Opcode.ELTWISE: Queue.COMPUTE,
    Opcode.LUT: Queue.COMPUTE,
    Opcode.COPY: Queue.STORE,
    Opcode.FILL: Queue.STORE,
    Opcode.HOST: Queue.COMPUTE,
    Opcode.VMATMUL: Queue.COMPUTE,
    Opcode.SYNC: Queue.ALL,
    Opcode.DONE: Queue.ALL,
}

A = unsigned(ADDR_BITS)
D = unsigned(12)  # spatial / channel dimension
S8 = signed(8)

_HEADER_FIELDS = {
    "opcode": Opcode,
    "pop_prev": unsigned(1),
    "pop_next": unsigned(1),
    "push_prev": unsigned(1),
    "push_next": unsigned(1),
    "overlap": unsigned(1),  # COMPUTE queue: may issue while the other compute unit is busy
    "_rsv": unsigned(6),
}
HEADER = data.StructLayout(_HEADER_FIELDS)

_FIELDS: dict[Opcode, dict] = {
    Opcode.NOP: {},
    Opcode.SYNC: {},
    Opcode.DONE: {},
    Opcode.LOAD: {
        "buf": BufSel,
        "slot": unsigned(1),
        "sram_addr": A,
        "nbytes": A,
    },
    Opcode.CONV: {
        "in_addr": A,
        "out_addr": A,
        "in_h": D,
        "in_w": D,
        "in_c": unsigned(16),
        "out_h": D,
        "out_w": D,
        "out_pitch": unsigned(16),  # bytes between consecutive output pixels (>= n_cols)
        "n_cols": D,  # output channels of this column tile
        "k_h": unsigned(4),
        "k_w": unsigned(4),
        "stride_h": unsigned(3),
        "stride_w": unsigned(3),
        "pad_top": unsigned(4),
        "pad_left": unsigned(4),
        "wslot": unsigned(1),
        "pslot": unsigned(1),
        "in_zp": S8,
        "out_zp": S8,
        "act_min": S8,
        "act_max": S8,
        "in_pitch": unsigned(16),  # bytes between consecutive input pixels; 0 means in_c
        "acc": AccMode,  # K split across instructions: int32 partial sums at acc_addr
        "acc_addr": A,
    },
    Opcode.DWCONV: {
        "in_addr": A,
        "out_addr": A,
        "w_addr": A,
        "p_addr": A,
        "in_h": D,
        "in_w": D,
        "in_c": D,
        "out_h": D,
        "out_w": D,
        "depth_mult": unsigned(4),
        "k_h": unsigned(8),
        "k_w": unsigned(8),
        "stride_h": unsigned(3),
        "stride_w": unsigned(3),
        "pad_top": unsigned(4),
        "pad_left": unsigned(4),
        "in_zp": S8,
        "out_zp": S8,
        "act_min": S8,
        "act_max": S8,
    },
    Opcode.POOL: {
        "mode": PoolMode,
        "in_addr": A,
        "out_addr": A,
        "in_h": D,
        "in_w": D,
        "in_c": D,
        "out_h": D,
        "out_w": D,
        "k_h": unsigned(8),
        "k_w": unsigned(8),
        "stride_h": unsigned(4),
        "stride_w": unsigned(4),
        "pad_top": unsigned(4),
        "pad_left": unsigned(4),
        "act_min": S8,
        "act_max": S8,
    },
    Opcode.ELTWISE: {
        "mode": EltMode,
        "b_period": unsigned(16),  # 0: b has count elements; else b[i % b_period] (broadcast)
        "a_addr": A,
        "b_addr": A,
        "out_addr": A,
        "count": A,
        "p_addr": A,
    },
    Opcode.LUT: {
        "in_addr": A,
        "out_addr": A,
        "count": A,
        "lut_addr": A,
    },
    Opcode.COPY: {
        "src_addr": A,
        "dst_addr": A,
        "row_bytes": unsigned(16),
        "rows": unsigned(16),
        "planes": unsigned(16),
        "src_row_stride": A,
        "src_plane_stride": A,
        "dst_row_stride": A,
        "dst_plane_stride": A,
    },
    Opcode.FILL: {
        "dst_addr": A,
        "row_bytes": unsigned(16),
        "rows": unsigned(16),
        "dst_row_stride": A,
        "value": S8,
    },
    Opcode.HOST: {
        "call": unsigned(16),  # index into the bundle's host-call table
    },
    Opcode.VMATMUL: {
        "in_addr": A,
        "out_addr": A,
        "w_addr": A,
        "p_addr": A,
        "m": unsigned(16),
        "k": unsigned(16),
        "n": unsigned(16),
        "out_zp": S8,
        "act_min": S8,
        "act_max": S8,
    },
}

_DOC = {
    Opcode.LOAD: (
        "Copy `nbytes` from SRAM `sram_addr` into slot `slot` of WBUF (weights) or PBUF "
        "(per-channel bias/multiplier/shift records)."
    ),
    Opcode.CONV: (
        "Conv/GEMM of one column tile on the array. Input NHWC at `in_addr` "
        "(in_h x in_w x in_c); im2col on the fly with kernel k_h x k_w, strides, top/left "
        "padding (bottom/right padding implied by out_h/out_w; padded taps read in_zp). "
        "Weights WBUF[wslot] (K x n_cols), params PBUF[pslot]. Output pixel p, channel j at "
        "`out_addr + p*out_pitch + j`. FULLY_CONNECTED is a 1x1 CONV with in_h=1, in_w=batch. "
        "Input pixels are `in_pitch` bytes apart (0: in_c), so a K chunk can read a channel "
        "slice; `acc` FIRST/MID/LAST accumulates chunks in int32 at `acc_addr` (pixel p, "
        "channel j at acc_addr + 4*(p*n_cols + j), little-endian)."
    ),
    Opcode.DWCONV: (
        "Depthwise conv on the vector unit: output channel c = ci*depth_mult + m; weights int8 "
        "[k_h][k_w][in_c*depth_mult] at `w_addr`, per-channel 12-byte records at `p_addr`. "
        "MEAN over H, W is a DWCONV with an all-ones k_h = H, k_w = W kernel."
    ),
    Opcode.POOL: (
        "AVG: sum over the valid (unpadded) window / valid count, rounded half away from zero "
        "(TFLM); MAX: max over the valid window. Then clamp to [act_min, act_max]. No requant."
    ),
    Opcode.ELTWISE: (
        "`count` elements a (op) b -> out; b_period > 0 broadcasts b[i % b_period] (scalar: 1, "
        "per channel: C). TFLite quantized ADD (left shift 20, per-input multipliers) or MUL; "
        "the 12 int32 parameters at `p_addr` are " + ", ".join(ELT_PARAM_FIELDS) + "."
    ),
    Opcode.LUT: (
        "out[i] = lut[in[i] + 128] for `count` int8 elements; the 256-byte table is at `lut_addr`."
    ),
    Opcode.COPY: (
        "for p < planes, r < rows: copy `row_bytes` bytes from src + p*src_plane_stride + "
        "r*src_row_stride to dst + p*dst_plane_stride + r*dst_row_stride."
    ),
    Opcode.FILL: "for r < rows: set `row_bytes` bytes at dst + r*dst_row_stride to `value`.",
    Opcode.HOST: (
        "Stop the compute queue and let the host run host-call `call` of the bundle (a graph op "
        "the NPU does not implement) on SRAM tensors."
    ),
    Opcode.VMATMUL: (
        "out[i][j] = requant(sum_k in[i][k] * w[j][k] + bias[j]) for i < m, j < n on the vector "
        "unit (each lane one output channel, dw_taps products per cycle): input m x k int8 at "
        "`in_addr`, weights n x k int8 at `w_addr`, 12-byte records at `p_addr`, output m x n. "
        "The compiler uses it instead of CONV when M is too small to fill the array (FC at "
        "batch 1, 1x1 convs on tiny feature maps)."
    ),
    Opcode.SYNC: "Wait until the three queues are idle.",
    Opcode.DONE: "Wait until the three queues are idle, then raise done.",
    Opcode.NOP: "No operation (dependency flags still apply).",
}


def _build_layouts() -> dict[Opcode, data.StructLayout]:
    out = {}
    for op, fields in _FIELDS.items():
        f = dict(_HEADER_FIELDS)
        f.update(fields)
        lay = data.StructLayout(f)
        if lay.size > INSTR_BITS:
            raise AssertionError(f"{op.name} layout is {lay.size} bits > {INSTR_BITS}")
        out[op] = lay
    return out


#: Per-opcode instruction layouts (header first), each at most INSTR_BITS wide.
LAYOUTS: dict[Opcode, data.StructLayout] = _build_layouts()

#: The whole instruction word for the RTL decoder: ``data.View(INSTR_LAYOUT, word)``; ``.header``
#: selects the queue, ``.conv`` / ``.load`` / ... read the fields of that opcode's layout.
INSTR_LAYOUT = data.UnionLayout(
    {"raw": unsigned(INSTR_BITS), "header": HEADER}
    | {op.name.lower(): lay for op, lay in LAYOUTS.items()}
)

# precomputed (name, offset, width, signed, enum) tuples for the host codec
_CODEC = {
    op: [
        (
            n,
            f.offset,
            f.width,
            Shape.cast(f.shape).signed,
            f.shape if isinstance(f.shape, type) and issubclass(f.shape, enum.Enum) else None,
        )
        for n, f in lay
    ]
    for op, lay in LAYOUTS.items()
}


def encode(fields: dict) -> bytes:
    """Pack one instruction: ``fields`` has ``opcode`` (Opcode) and any of its layout's fields
    (absent: 0).

    Raises ValueError for an unknown field or a value that does not fit its width.
    """
    op = Opcode(fields["opcode"])
    word = 0
    names = set()
    for name, off, width, sgn, en in _CODEC[op]:
        names.add(name)
        v = fields.get(name, 0)
        if en is not None:
            v = en(v).value
        v = int(v)
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if sgn else (0, (1 << width) - 1)
        if not lo <= v <= hi:
            raise ValueError(f"{op.name}.{name} = {v} does not fit in {width} bits")
        word |= (v & ((1 << width) - 1)) << off
    extra = set(fields) - names
    if extra:
        raise ValueError(f"{op.name} has no field(s) {sorted(extra)}")
    return word.to_bytes(INSTR_BYTES, "little")


def decode(raw: bytes) -> dict:
    """Unpack one INSTR_BYTES instruction into a dict of every field (enums as enum members).

    Raises ValueError for an unknown opcode.
    """
    if len(raw) != INSTR_BYTES:
        raise ValueError(f"instruction must be {INSTR_BYTES} bytes, got {len(raw)}")
    word = int.from_bytes(raw, "little")
    code = word & 0x1F
    try:
        op = Opcode(code)
    except ValueError:
        raise ValueError(f"unknown opcode {code}") from None
    out = {}
    for name, off, width, sgn, en in _CODEC[op]:
        v = (word >> off) & ((1 << width) - 1)
        if sgn and v >> (width - 1):
            v -= 1 << width
        out[name] = en(v) if en is not None else v
    out.pop("_rsv", None)
    return out


def field_range(op: Opcode, name: str) -> tuple[int, int]:
    """The (min, max) integer value of field ``name`` of opcode ``op`` (from :data:`LAYOUTS`):
    the compiler's range checks read the ISA here instead of restating widths."""
    for n, _off, width, sgn, _en in _CODEC[Opcode(op)]:
        if n == name:
            return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if sgn else (0, (1 << width) - 1)
    raise KeyError(f"{Opcode(op).name} has no field {name!r}")


def fits(op: Opcode, **values: int) -> bool:
    """True when every ``field=value`` is within the field's range of opcode ``op``."""
    for name, v in values.items():
        lo, hi = field_range(op, name)
        if not lo <= int(v) <= hi:
            return False
    return True


def encode_program(instrs: list[dict]) -> bytes:
    return b"".join(encode(i) for i in instrs)


def decode_program(raw: bytes) -> list[dict]:
    if len(raw) % INSTR_BYTES:
        raise ValueError(f"program length {len(raw)} is not a multiple of {INSTR_BYTES}")
    return [decode(raw[i : i + INSTR_BYTES]) for i in range(0, len(raw), INSTR_BYTES)]


def wbuf_kmax(config) -> int:
    """Largest K one CONV may use on ``config``: the WBUF slot holds K x array_cols weights and is
    sized at 1/64 of the SRAM per slot column (default 8192, ecp5 768, tiny 4096, ice40 1024),
    at least 256 and at most WBUF_KMAX."""
    return max(256, min(WBUF_KMAX, config.sram_bytes // (64 * config.array_cols)))


def buffer_sizes(config) -> dict:
    """Local buffer sizes in bytes per slot (two slots each) for a Config."""
    return {
        "wbuf_slot": wbuf_kmax(config) * config.array_cols,
        "pbuf_slot": PARAM_RECORD_BYTES * config.array_cols,
    }


class Timing:
    """The cycle model's per-unit constants, derived from a Config (shared with the RTL's targets).
    ``sim.isa_sim.instr_cost`` models the RTL units' mechanisms with them (measured on the default
    preset: every layer of person_detect and MobileNetV2-224 within 8 % of the RTL).

    - LOAD: ``load_latency + ceil(nbytes / load_bytes_per_cycle)``.
    - CONV (hw/conv_unit.py feeding the GEMM engine of hw/gemm.py: weight-stationary R x C array,
      two weight banks, loop nest M blocks of ``acc_rows`` = ``hw.gemm.m_block`` rows > K tiles >
      rows). The act gather sends one *piece* per cycle: a run of lanes contiguous in SRAM (the
      rest of a tap; with dense pixels also a run over two taps or a whole kernel row), or a
      padding tap; with in_c a multiple of R a 16-lane beat is one piece, a first layer (in_c =
      3, 3x3) takes 3 + 2 pieces for its two K tiles. Over the sequence of (block, K tile) with
      a[i] = rows x pieces (+ ``conv_turn``: 1 with ``Config.conv_walk_stages`` = 2, the walk's
      turn cycle after each such pass), tile i + 1 starts at max(s[i] + a[i], s[i-1] + a[i-1]
      + R + C + 1) (it loads its R rows into tile i - 1's bank, released C + 1 cycles after that
      tile's last row; tile 1 into the free bank, R + 1 cycles after tile 0): blocks of
      >= R + C + 1 rows stream one row per cycle. Plus ``conv_setup`` + R (the first tile's load)
      + ``array_latency`` (``hw.systolic.array_latency``: R + C + 1, + 2 at a fast clock) +
      ``conv_out`` (1 with ``Config.conv_out_stages`` = 2: the output scatter's register) +
      ``requant_latency`` (the conv unit's requant pipeline, ``hw.requant.RequantCore``: 18
      stages at a fast clock, 7 at a slow one) per instruction, and the int32 partials read
      back for acc MID/LAST; a LAST through a time-shared requant (``Config.last_requant_lanes``)
      streams no faster than ``last_requant_cycles`` per output row.
    - Vector unit (hw/vector.py, DWCONV / POOL / ELTWISE / LUT / VMATMUL): one *command* per cycle
      reading up to ``dw_taps`` x vectors and one w vector of ``vector_lanes`` bytes; the SRAM lines
      they touch (two for a vector crossing a line end) come from a line cache of
      ``vector_cache_lines`` entries (round-robin victims), a miss costing one cycle (one line read
      per cycle): a command costs max(1, lines missed) (victims skip every entry the command
      hits), and REQ waits while the ``vector_meta_depth``-deep command FIFO is full (ASM
      assembles a command's lines, one per cycle, from the cycle after REQ queued it: a 10-miss
      command stalls the hits after it). The model replays the commands through that cache
      (sampling the rows of large maps). Commands: DWCONV / POOL loop super-groups of up to
      ``dw_groups`` groups of ``vector_lanes`` output channels (outer; a DWCONV super-group first
      loads each group's parameter record in ceil(12 / ``dw_taps``) commands and its weights,
      ``dw_taps`` taps per command, into the ``dw_weight_rows``-row weight memory: fewer groups
      when a larger kernel needs more rows), output pixels, the groups, then the taps,
      ``dw_taps`` per command (a DWCONV kernel of more than ``dw_weight_regs`` taps takes one
      group per super-group and one tap per command with its weight vector). Pixels are never
      packed into idle lanes (C_out < lanes still takes one command per pixel). VMATMUL: rows >
      groups of ``vector_lanes`` outputs (ceil(12 / dw_taps) parameter commands) > ``dw_taps``
      output channels > K chunks of ``vector_lanes``. ELTWISE: ceil(12 / dw_taps) parameter
      commands, then one per ``vector_lanes`` elements (split at b_period boundaries); LUT:
      ceil(256 / lanes / dw_taps) table commands, then one per ``vector_lanes`` elements. Plus
      ``vector_setup`` + ``vector_latency`` (read, EXEC, the 12-stage POST pipeline, write).
      With a time-shared POST (``Config.vector_post_lanes``) an output vector enters POST in
      ``post_cycles`` phases: commands that emit one are spaced ``post_cycles`` apart (the
      command FIFO backs up behind them), and the last vector adds ``post_cycles`` - 1 cycles.
    - COPY / FILL (hw/dma.py's row mover, measured on the RTL): ``store_setup`` per instruction,
      then per row ``copy_row_cycles`` + the destination lines the row touches + one (the
      realigning read is a line longer, also for equal alignments) (COPY), or
      ``fill_row_cycles`` + the destination lines (FILL); W = ``sram_banks *
      sram_word_bytes``, averaged exactly over the rows' alignments. A 1-byte COPY row (a
      TRANSPOSE) costs 3 cycles.
    - every instruction: ``issue`` cycles of decode overhead; a program: ``startup`` cycles
      (the first fetch) before the first issue.
    - overlapping COMPUTE instructions (``overlap``) share the SRAM's one read port, round robin
      (unless ``Config.sram_read_ports`` = 2 gives the vector unit its own):
      each has a read rate when alone, line reads over its cost (``sim.isa_sim.read_rate``: a 1x1
      CONV reads in_pitch / W lines per row of each K tile, other kernels a line per streaming
      cycle; a window op k_h * stride_w * in_c / W per command cycle; ELTWISE its two inputs once;
      VMATMUL a line per command cycle); while both run and the rates sum above 1, the one
      wanting more than its share (the rest of the port, at least half) slows in proportion.
    """

    def __init__(self, config):
        self.R = config.array_rows
        self.C = config.array_cols
        self.lanes = config.vector_lanes
        bw = config.sram_word_bytes * config.sram_banks
        self.load_bytes_per_cycle = max(1, bw // 2)
        self.store_bytes_per_cycle = max(1, bw // 2)
        self.store_setup = 6
        self.copy_row_cycles = 1
        self.fill_row_cycles = 1
        self.load_latency = 8
        self.line_bytes = bw
        # taps per lane per cycle: a 3x3 window, but the vector unit never has more multipliers
        # than the array (lanes * taps <= R * C), so MAC utilization stays <= 1; or the config's
        # own (Config.vector_taps: a smaller vector unit for FPGAs)
        self.dw_taps = config.vector_taps or max(1, min(9, (self.R * self.C) // self.lanes))
        # output vectors of the vector unit take lanes / post_lanes cycles each (hw/vector.py
        # POST time-shared over Config.vector_post_lanes lanes)
        self.post_cycles = self.lanes // config.post_lanes
        # an AccMode.LAST output beat through the conv unit's own requant: C / lanes cycles when
        # Config.last_requant_lanes time-shares it (hw.requant.SerialRequant)
        self.last_requant_cycles = self.C // (config.last_requant_lanes or self.C)
        # vector unit (hw/vector.py): line cache entries 2 * (dw_taps + 1) + 4; DWCONV / POOL
        # super-groups of up to dw_groups channel groups (one line of channels, at most 16); the
        # weight memory: dw_weight_rows rows of dw_taps taps (a 3x3 kernel for every group of a
        # super-group); kernels of up to dw_weight_regs taps keep their weights there
        self.vector_cache_lines = 2 * (self.dw_taps + 1) + 4
        self.dw_groups = max(1, min(16, bw // self.lanes))
        self.dw_weight_rows = self.dw_groups * -(-9 // self.dw_taps)
        self.dw_weight_regs = self.dw_weight_rows * self.dw_taps
        self.vector_meta_depth = 8
        self.vector_setup = 3
        # read (the SRAM's latency), EXEC's and the command input's stages, POST, write
        from hw.npu_if import sram_read_latency
        from hw.vector import exec_latency, req_latency

        self.vector_latency = (16 + sram_read_latency(config) + exec_latency(config)
                               + req_latency(config))
        from hw.gemm import m_block

        self.acc_rows = m_block(config)
        from hw.requant import RequantCore
        from hw.systolic import array_latency

        # derived from the gateware, not restated: the systolic array's and the conv unit's
        # requant pipeline depths for this config's clock (Config.fast_clock)
        self.array_latency = array_latency(config)
        self.requant_latency = len(RequantCore.stages_for(config))
        self.conv_setup = 18
        # Config.conv_walk_stages = 2: the act-gather walk's turn cycle after each K tile's pass
        # over an M block's rows (hw/conv_unit.py)
        self.conv_turn = config.conv_walk_stages - 1
        # Config.conv_out_stages = 2: the output scatter's input register, per instruction
        self.conv_out = config.conv_out_stages - 1
        self.issue = 1
        self.host_cycles = 0
        # the vector unit's own SRAM read port (Config.sram_read_ports): no port sharing
        self.shared_read_port = config.sram_read_ports < 2
        self.startup = 6

    # Equal constants are the same model: the cycle model's caches key on Timing objects.
    def _fields(self) -> tuple:
        return tuple(sorted(vars(self).items()))

    def __eq__(self, other) -> bool:
        return isinstance(other, Timing) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())


def doc_markdown() -> str:
    """docs/isa.md, generated from the definitions above."""
    lines = [
        "# logicdie NPU instruction set",
        "",
        "Generated by `python -m hw.isa --doc > docs/isa.md` from `hw/isa.py`; "
        "do not edit by hand.",
        "",
        "## Machine model",
        "",
    ]
    lines += [
        ln.strip() if not ln.startswith("  ") else ln
        for ln in __doc__.split("Machine model (contract):")[1].splitlines()
    ]
    lines += [
        "",
        f"Instructions are {INSTR_BITS} bits ({INSTR_BYTES} bytes). Each layout table lists "
        "the field, its type (`uN` unsigned, `sN` two's-complement signed, or an enum) and its "
        "bit offset.",
        "",
        "## Opcodes",
        "",
        "| opcode | value | queue | meaning |",
        "|---|---|---|---|",
    ]
    for op in Opcode:
        lines.append(f"| {op.name} | {op.value} | {QUEUE_OF[op].name} | {_DOC[op]} |")
    lines += ["", "## Layouts", ""]
    for op, lay in LAYOUTS.items():
        lines += [
            f"### {op.name} ({lay.size} bits used)",
            "",
            "| field | bits | offset |",
            "|---|---|---|",
        ]
        for name, off, width, sgn, en in _CODEC[op]:
            kind = f"enum {en.__name__}" if en is not None else ("s" if sgn else "u") + str(width)
            lines.append(f"| {name} | {kind} | {off} |")
        lines.append("")
    lines += ["## Cycle model", "", Timing.__doc__.strip(), "", "## Enums", ""]
    for en in (Queue, BufSel, PoolMode, EltMode, AccMode):
        lines.append(f"- `{en.__name__}`: " + ", ".join(f"{m.name}={m.value}" for m in en))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if "--doc" in sys.argv:
        sys.stdout.write(doc_markdown())
    else:
        for op, lay in LAYOUTS.items():
            print(f"{op.name:8s} {lay.size:4d} bits")

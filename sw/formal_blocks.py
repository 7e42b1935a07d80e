"""The formal wrappers of each block (registered in :data:`sw.formal.BLOCKS`; docs/formal.md).

Each builder ``build(m, ps, mutation)`` instantiates one block at small parameters inside the
wrapper module ``m``, attaches the property sets of :mod:`hw.props` to ``ps`` and returns the
wrapper's free inputs (driven by the solver every cycle, subject to the assumptions).

Mutations (seeded bugs) sit between the block and the ports the properties watch
(:func:`out_tap`, :func:`in_tap`), or drop an environment assumption the property depends on; each
block's ``mutations`` table says which properties each must break.
"""

from __future__ import annotations

from amaranth import Cat, Const, Mux, Signal
from amaranth.lib import stream

from hw import props
from hw.config import preset
from hw.csi2 import DataType, ecc_parity
from sw.formal import Block, register

__all__ = ["out_tap", "in_tap", "OUT_TAP_KINDS", "IN_TAP_KINDS"]

#: Mutations the stream taps implement, as ``<tap name>_<kind>`` (e.g. ``o_dup_beat``).
OUT_TAP_KINDS = ("valid_drop", "payload_glitch", "dup_beat", "drop_beat")
IN_TAP_KINDS = ("drop_beat", "stuck")


def _free(free: list, shape, name: str) -> Signal:
    s = Signal(shape, name=name)
    free.append(s)
    return s


def _kind(mutation, name):
    pre = f"{name}_"
    return mutation[len(pre):] if mutation and mutation.startswith(pre) else None


def out_tap(m, port, mutation, free: list, name: str = "o"):
    """The block's output stream as the checker sees it; mutations ``<name>_<kind>`` corrupt it:
    ``valid_drop`` drops ``valid`` (and the transfer) in a solver-chosen cycle,
    ``payload_glitch`` flips payload bit 0 in a solver-chosen cycle, ``dup_beat`` presents
    every beat twice, ``drop_beat`` loses a solver-chosen beat (the block sees it taken)."""
    mutation = _kind(mutation, name)
    obs = stream.Signature(port.payload.shape()).create(path=(f"{name}_obs",))
    free.append(obs.ready)
    m.d.comb += [obs.valid.eq(port.valid), obs.payload.eq(port.payload),
                 port.ready.eq(obs.ready)]
    if mutation == "valid_drop":
        g = _free(free, 1, f"{name}_glitch")
        m.d.comb += [obs.valid.eq(port.valid & ~g), port.ready.eq(obs.ready & ~g)]
    elif mutation == "payload_glitch":
        g = _free(free, 1, f"{name}_glitch")
        m.d.comb += obs.payload.eq(port.payload.as_value() ^ g)
    elif mutation == "dup_beat":
        second = Signal(name=f"{name}_second")
        with m.If(obs.valid & obs.ready):
            m.d.sync += second.eq(~second)
        m.d.comb += port.ready.eq(obs.ready & second)
    elif mutation == "drop_beat":
        g = _free(free, 1, f"{name}_glitch")
        m.d.comb += [obs.valid.eq(port.valid & ~g), port.ready.eq(obs.ready | g)]
    return obs


def in_tap(m, port, mutation, free: list, name: str = "i"):
    """The block's input stream as the environment drives it; mutations ``<name>_drop_beat``
    (a solver-chosen beat is lost, the environment sees it taken) and ``<name>_stuck`` (``ready``
    hidden for good from a solver-chosen cycle on)."""
    mutation = _kind(mutation, name)
    env = stream.Signature(port.payload.shape()).create(path=(f"{name}_env",))
    free += [env.valid, env.payload.as_value()]
    m.d.comb += [port.valid.eq(env.valid), port.payload.eq(env.payload),
                 env.ready.eq(port.ready)]
    if mutation == "drop_beat":
        g = _free(free, 1, f"{name}_glitch")
        m.d.comb += [port.valid.eq(env.valid & ~g), env.ready.eq(port.ready | g)]
    elif mutation == "stuck":
        g = _free(free, 1, f"{name}_stuck_now")
        stuck = Signal(name=f"{name}_stuck")
        m.d.sync += stuck.eq(stuck | g)
        m.d.comb += [port.valid.eq(env.valid & ~stuck), env.ready.eq(port.ready & ~stuck)]
    return env


# ---------------------------------------------------------------------------------------------
# CSI-2 RX


RX_CONFIG = preset("tiny")           # 4 bytes per beat, as the default die
RX_HUNT_BOUND = 24
RX_FS_WC = 0x0005


def _fs_bytes(wc: int = RX_FS_WC):
    h24 = DataType.FS.value | (wc << 8)
    return [h24 & 0xFF, (h24 >> 8) & 0xFF, (h24 >> 16) & 0xFF, ecc_parity(h24)]


def build_csi2_rx(m, ps, mutation):
    """CSI-2 RX (hw/csi2_rx.py) with 4-byte beats fed any byte sequence.

    Environment: the input obeys the stream rules and the beat contract (``1 <= n <= 4`` on a
    last beat); any bytes, bursts of any length. Liveness properties assume the pixel consumer
    keeps ``o.ready`` high.
    """
    from hw.csi2_rx import Csi2Rx

    cfg = RX_CONFIG
    N = cfg.csi2_lanes_bytes
    m.submodules.dut = dut = Csi2Rx(cfg)
    free = []
    i = in_tap(m, dut.i, mutation, free)
    o = out_tap(m, dut.o, mutation, free)
    beat = i.payload
    ps.assume(~(i.valid & beat.last) | ((beat.n >= 1) & (beat.n <= N)))
    props.stream_rules(ps, m, i, "i", dut_drives=False)
    props.stream_rules(ps, m, o, "o", dut_drives=True)

    take = i.valid & i.ready
    fair = o.ready                           # a consumer that keeps up

    # back to hunting: after any burst ends, the RX takes a header beat within the bound
    ended = props.past(m, take & beat.last, "burst_ended")
    props.bounded_response(ps, m, "rx.back_to_hunting", ended, i.ready, RX_HUNT_BOUND,
                           f"after any burst, ready for the next header within {RX_HUNT_BOUND} "
                           "cycles", assumes=[fair])
    props.never_waits(ps, m, "i.consumed", i.valid & ~i.ready, RX_HUNT_BOUND,
                      f"a waiting beat is taken within {RX_HUNT_BOUND} cycles",
                      assumes=[fair])

    # FS resynchronizes: an FS short packet at a burst start opens a frame within 4 cycles,
    # whatever came before
    at_start = Signal(init=1, name="at_burst_start")
    with m.If(take):
        m.d.sync += at_start.eq(beat.last)
    fs = Cat(*[Const(b, 8) for b in _fs_bytes()])
    fs_beat = at_start & beat.last & (beat.n == N) & (Cat(*beat.data) == fs)
    frames = dut.counters[0]                 # COUNTER_NAMES[0] == "frames"
    opened = frames != props.past(m, frames, "frames_prev")
    props.bounded_response(ps, m, "rx.fs_resync", take & fs_beat, opened, 6,
                           "an FS packet at a burst start opens a frame within 6 cycles, "
                           "whatever bytes came before")

    # status strobes
    sv = dut.status_valid
    in_frame = dut.in_frame
    if mutation == "status_stretch":
        sv = sv | props.past(m, sv, "sv_prev_mut")
    elif mutation == "status_spurious":
        sv = sv | _free(free, 1, "status_glitch")
    st = props.started(m)
    ps.check("status.one_cycle", ~(st & sv & props.past(m, sv, "sv_prev")),
             "status_valid is a one-cycle strobe")
    ps.check("status.frame_was_open", ~sv | (st & props.past(m, in_frame, "was_in_frame")),
             "a status record only closes an open frame")
    ps.cover("status.flagged", sv & (dut.status.flags != 0))
    ps.cover("status.clean", sv & (dut.status.flags == 0))
    ps.cover("o.sof", o.valid & o.ready & o.payload.sof)

    # no frame start invented or duplicated: sof beats out <= frames opened (FS decoded)
    sofs = props.count(m, o.valid & o.ready & o.payload.sof, 8, "sof_out")
    ps.check("o.one_sof_per_frame", (sofs + (o.valid & o.ready & o.payload.sof)) <= frames[:8],
             "at most one sof pixel per frame opened (no pixel beat duplicated or invented "
             "at a frame start)")
    ps.cover("rx.fs_opens_frame", fs_beat & take)
    # the FS mutation: the wrapper makes the RX lose the FS beat
    if mutation == "fs_lost":
        # re-drive: the block does not see an FS beat (it is replaced by an idle cycle)
        m.d.comb += [dut.i.valid.eq(i.valid & ~fs_beat), i.ready.eq(dut.i.ready | fs_beat)]
    return free


register(Block(
    name="csi2_rx", build=build_csi2_rx, depth=20, cover_depth=30,
    depths={"rx.back_to_hunting": 30, "i.consumed": 30},
    doc="CSI-2 RX, 4 bytes/beat, any byte sequence",
    mutations={
        "o_valid_drop": ["o.valid_held"],
        "o_payload_glitch": ["o.payload_stable"],
        "o_dup_beat": ["o.one_sof_per_frame"],
        "i_stuck": ["rx.back_to_hunting", "i.consumed"],
        "fs_lost": ["rx.fs_resync"],
        "status_stretch": ["status.one_cycle"],
        "status_spurious": ["status.frame_was_open"],
    },
))


# ---------------------------------------------------------------------------------------------
# ISP

ISP_CONFIG = preset("tiny").replace(max_line_pixels=64)
#: Smallest interesting frame: 4x2 RAW10 (binned 2x1) -> nearest upscale 1:2 in y -> 2x2 RGB.
ISP_SENSOR = (4, 2)
ISP_SIZE = (2, 2)
ISP_LATENCY_BOUND = 48


def _isp_params():
    from models.isp import IspParams

    sw_, sh = ISP_SENSOR
    return IspParams(sensor_w=sw_, sensor_h=sh, roi=(0, 0, sw_, sh), size=ISP_SIZE, channels=3,
                     max_line_pixels=ISP_CONFIG.max_line_pixels)


def build_isp(m, ps, mutation):
    """ISP (hw/isp.py) at the smallest parameters: 4x2 sensor frames -> 2x2x3 tensors.

    Environment: parameters fixed (``models.isp.IspParams.hw_fields``); the input obeys the stream
    rules and carries good frames back to back (``sof`` on pixel 0, ``sol`` on each line's first
    pixel, 4x2 pixels a frame, any pixel values), starting from the third cycle (the block
    registers its parameters). Liveness properties assume ``o.ready`` stays high. The frame
    properties (beat counts, latency) fix the pixel values at 0: no control decision of the ISP
    reads a pixel value, and the multipliers of free values would dominate the solver time at
    the depth of two frames.
    """
    from amaranth.hdl import Fragment

    import hw.isp as isp_mod

    cfg = ISP_CONFIG
    params = _isp_params()
    dut = isp_mod.Isp(cfg)
    frag = Fragment.get(dut, None)       # elaborated here: its FIFOs get bounds below
    m.submodules.dut = frag
    m.d.comb += dut.params.eq(isp_mod.params_layout(cfg).const(params.hw_fields()))
    free = []
    i = in_tap(m, dut.i, mutation, free)
    o = out_tap(m, dut.o, mutation, free)
    props.stream_rules(ps, m, i, "i", dut_drives=False)
    props.stream_rules(ps, m, o, "o", dut_drives=True)

    # good frames in: position counters of the input beat
    sw_, sh = ISP_SENSOR
    gx = Signal(range(sw_), name="in_x")
    gy = Signal(range(sh), name="in_y")
    take = i.valid & i.ready
    frame_end = (gx == sw_ - 1) & (gy == sh - 1)
    with m.If(take):
        m.d.sync += [gx.eq(Mux(gx == sw_ - 1, 0, gx + 1)),
                     gy.eq(Mux(gx == sw_ - 1, Mux(gy == sh - 1, 0, gy + 1), gy))]
    ps.assume(i.payload.sof == ((gx == 0) & (gy == 0)))
    ps.assume(i.payload.sol == (gx == 0))
    age = Signal(2, name="settle")
    with m.If(age != 3):
        m.d.sync += age.eq(age + 1)
    ps.assume(~i.valid | (age >= 2))

    # exactly W x H beats a frame, first on the first, last on the last
    n_out = ISP_SIZE[0] * ISP_SIZE[1]
    xfer = o.valid & o.ready
    k = Signal(range(n_out + 2), name="out_beats")       # beats of the open frame so far
    open_ = Signal(name="out_open")
    beat = o.payload
    with m.If(xfer):
        with m.If(beat.last):
            m.d.sync += [open_.eq(0), k.eq(0)]
        with m.Else():
            m.d.sync += [open_.eq(1), k.eq(Mux(beat.first, 1, Mux(k > n_out, k, k + 1)))]
    pos = Mux(beat.first, 0, k)                           # this beat's index in its frame
    zero = [i.payload.pix == 0]
    if mutation:
        # the first tensor beat leaves at step ~46: seeded-bug and cover runs go that deep, with
        # pixels 0
        ps.assume(zero[0])
    ps.check("o.frame_beats",
             ~xfer | ((beat.first == ~open_) & (pos <= n_out - 1)
                      & (beat.last == (pos == n_out - 1))),
             f"every frame is exactly {n_out} beats (W x H): first on the first, last on the "
             "last, none outside a frame", zero)
    ps.cover("o.frame_done", xfer & beat.last)
    ps.cover("i.frame_in", take & frame_end)

    fair = o.ready
    props.bounded_response(ps, m, "isp.frame_out", take & frame_end, xfer & beat.last,
                           ISP_LATENCY_BOUND,
                           f"a frame's last tensor beat leaves within {ISP_LATENCY_BOUND} cycles "
                           "of its last pixel", assumes=[fair, *zero])
    props.never_waits(ps, m, "i.consumed", i.valid & ~i.ready, 8,
                      "a waiting pixel is taken within 8 cycles", assumes=[fair])

    # the upscaler pops mfifo only under r_rdy; the output stage strobes fifo.r_en freely and
    # qualifies the data with r_rdy (legal for amaranth.lib.fifo): no read-side rule there
    for path, f in props.find_fifos(frag):
        props.fifo_bounds(ps, m, f, f"isp.{path}", strict_read=(path != "fifo"))
    return free


register(Block(
    name="isp", build=build_isp, depth=24,
    depths={"isp.frame_out": 60, "o.frame_beats": 56},
    bmc_only=("isp.frame_out", "o.frame_beats"),
    cover_depth=56,
    mutation_depth=52,
    doc="ISP, 8x4 RAW10 frames -> 2x2x3 int8",
    mutations={
        "o_valid_drop": ["o.valid_held"],
        "o_payload_glitch": ["o.payload_stable"],
        "o_dup_beat": ["o.frame_beats"],
        "o_drop_beat": ["isp.frame_out"],
        "i_stuck": ["i.consumed"],
    },
))


# ---------------------------------------------------------------------------------------------
# NPU queues and controller

#: 64 bytes of SRAM: room for a program of 2 instructions (fetch past the end stops it), enough
#: for a token exchange on any of the four channels.
NPU_CONFIG = preset("tiny").replace(sram_bytes=64)
NPU_REPORT_BOUND = 20
NPU_HOST_BOUND = 12


def _npu_legal(m, shadow, slots):
    """Program-order legality of the dependency tokens of the program in ``shadow`` (header of
    each slot: opcode, pop_prev, pop_next, push_prev, push_next): for every token channel, the
    k-th pop comes after the k-th push in program order, up to the first DONE (or an opcode the
    decoder rejects). Tokens pushed by earlier instructions then always arrive, so a legal
    program cannot deadlock (the ISA's contract, docs/isa.md)."""
    from hw.isa import Opcode

    maxop = max(op.value for op in Opcode)
    pushes = [Const(0, 4)] * 4            # channels (0,1), (1,0), (1,2), (2,1)
    pops = [Const(0, 4)] * 4
    active = Const(1)
    legal = Const(1)
    for s in range(slots):
        h = shadow[s]
        op = h[:5]
        pop_prev, pop_next, push_prev, push_next = h[5], h[6], h[7], h[8]
        ql = op == Opcode.LOAD.value
        qs = (op == Opcode.COPY.value) | (op == Opcode.FILL.value)
        barrier = (op == Opcode.SYNC.value) | (op == Opcode.DONE.value) | (op > maxop)
        qc = ~ql & ~qs & ~barrier
        pop_c = [qc & pop_prev, ql & pop_next, qs & pop_prev, qc & pop_next]
        push_c = [ql & push_next, qc & push_prev, qc & push_next, qs & push_prev]
        new_pops = [pops[c] + pop_c[c] for c in range(4)]
        for c in range(4):
            legal = legal & (~active | (new_pops[c] <= pushes[c]))
        pops = new_pops
        pushes = [pushes[c] + push_c[c] for c in range(4)]
        active = active & (op != Opcode.DONE.value) & (op <= maxop)
    ok = Signal(name="program_legal")
    m.d.comb += ok.eq(legal)
    return ok


def build_npu(m, ps, mutation):
    """NPU top (hw/npu.py) with NullUnit stand-ins for the conv and vector units, 64 B SRAM.

    Environment (the host): the SRAM starts zeroed (as in simulation; Block.yosys); the host port
    obeys the stream rules; it writes SRAM only while the NPU is not busy and only instruction
    header words (the other words stay zero, so LOAD, COPY and FILL move zero bytes and every
    instruction is short); PROG_ADDR stays 0; START only with a
    legal program (:func:`_npu_legal`) and never after an error (the NPU needs a reset then).
    Liveness properties assume ``host_rsp.ready`` stays high.
    """
    from amaranth.hdl import Fragment

    from hw import regmap
    from hw.npu import NpuTop

    cfg = NPU_CONFIG
    dut = NpuTop(cfg, units="null")
    frag = Fragment.get(dut, None)       # elaborated here: its instruction queues get bounds
    m.submodules.dut = frag
    free = []
    hc = in_tap(m, dut.host_cmd, mutation, free, "host_cmd")
    rsp = out_tap(m, dut.host_rsp, mutation, free, "host_rsp")
    props.stream_rules(ps, m, hc, "host_cmd", dut_drives=False)
    props.stream_rules(ps, m, rsp, "host_rsp", dut_drives=True)

    status = dut.status
    if mutation == "status_glitch":
        status = status ^ Cat(Const(0, 1), _free(free, 1, "done_glitch"), Const(0, 2))
    busy, done, host_wait, error = status[0], status[1], status[2], status[3]
    p = hc.payload
    acc = hc.valid & hc.ready
    in_sram = p.addr < cfg.sram_bytes
    is_csr = p.addr >= regmap.CSR_BASE
    ob = (regmap.CSR_WORDS - 1).bit_length()
    csr_off = p.addr[2:2 + ob]
    slots = cfg.sram_bytes // 32
    ps.assume(p.addr[:2] == 0)
    ps.assume(~(hc.valid & p.we & in_sram) | (~dut.status[0] & (p.addr[2:5] == 0)))
    ps.assume(~(hc.valid & p.we & is_csr & (csr_off == regmap.offset("PROG_ADDR"))))

    shadow = [Signal(9, name=f"prog_hdr{s}") for s in range(slots)]
    with m.If(acc & p.we & in_sram):
        with m.Switch(p.addr[5:5 + (slots - 1).bit_length()]):
            for s in range(slots):
                with m.Case(s):
                    m.d.sync += shadow[s].eq(p.wdata[:9])
    legal = _npu_legal(m, shadow, slots)
    start_cmd = (hc.valid & p.we & is_csr & (csr_off == regmap.offset("CTRL"))
                 & p.wdata[regmap.CTRL_BITS["START"]])
    err_seen = Signal(name="error_seen")
    m.d.sync += err_seen.eq(err_seen | dut.status[3])
    if mutation != "illegal_tokens":
        ps.assume(~start_cmd | legal)
    ps.assume(~start_cmd | ~err_seen)

    fair = rsp.ready
    started = props.past(m, acc & start_cmd & ~dut.status[0], "npu_started")
    props.bounded_response(ps, m, "npu.done_or_error", started, done | error | host_wait,
                           NPU_REPORT_BOUND,
                           f"after START the NPU reports done, an error or a host call within "
                           f"{NPU_REPORT_BOUND} cycles (no deadlock on legal programs)",
                           assumes=[fair])
    props.never_waits(ps, m, "host_cmd.consumed", hc.valid & ~hc.ready, NPU_HOST_BOUND,
                      f"a host command is taken within {NPU_HOST_BOUND} cycles", assumes=[fair])
    ps.check("npu.status_exclusive", ~(busy & done), "never busy and done at once")
    ps.check("npu.irq", dut.irq == (done | host_wait | error), "irq = done | host_wait | error")
    # the three instruction queues: fetch pushes only under w_rdy, issue pops only under r_rdy
    for path, f in props.find_fifos(frag):
        if path in ("q0", "q1", "q2"):
            props.fifo_bounds(ps, m, f, f"npu.{path}")
    ps.cover("npu.done", done)
    ps.cover("npu.host_wait", host_wait)
    ps.cover("npu.error", error)
    ps.cover("npu.issue_load", dut.issue_valid[0])
    ps.cover("npu.issue_store", dut.issue_valid[2])
    return free


register(Block(
    name="npu", build=build_npu, depth=24,
    depths={"npu.done_or_error": 30},
    bmc_only=("npu.done_or_error",),
    cover_depth=24,
    doc="NPU queues and controller, NullUnit conv/vector, 64 B SRAM",
    # the SRAM banks have no init (power-up garbage, hw/sram.py); the formal host starts from a
    # zeroed SRAM, as the simulation does, so the words it does not write are zero
    yosys="memory_map\nopt_clean\nsetundef -zero -init",
    mutations={
        "host_rsp_valid_drop": ["host_rsp.valid_held"],
        "host_rsp_payload_glitch": ["host_rsp.payload_stable"],
        "host_cmd_stuck": ["host_cmd.consumed"],
        "illegal_tokens": ["npu.done_or_error"],
        "status_glitch": ["npu.status_exclusive", "npu.irq"],
    },
))


# ---------------------------------------------------------------------------------------------
# FIFO (amaranth.lib.fifo as used by the ISP and the NPU queues)

def build_fifo(m, ps, mutation):
    """A SyncFIFOBuffered of depth 4 between a producer that writes only when ``w_rdy`` and a
    consumer that reads only when ``r_rdy`` (mutations ``overfill`` / ``overdrain`` ignore
    them): the FIFO bounds the ISP and NPU FIFOs are checked with."""
    from amaranth.lib.fifo import SyncFIFOBuffered

    m.submodules.dut = f = SyncFIFOBuffered(width=8, depth=4)
    free = []
    want_w = _free(free, 1, "want_write")
    want_r = _free(free, 1, "want_read")
    free.append(f.w_data)
    m.d.comb += [f.w_en.eq(want_w & (f.w_rdy | (mutation == "overfill"))),
                 f.r_en.eq(want_r & (f.r_rdy | (mutation == "overdrain")))]
    props.fifo_bounds(ps, m, f, "fifo", cover_full=True)
    return free


register(Block(
    name="fifo", build=build_fifo, depth=12,
    doc="amaranth.lib.fifo.SyncFIFOBuffered, depth 4",
    mutations={"overfill": ["fifo.no_overflow"], "overdrain": ["fifo.no_underflow"]},
))


# ---------------------------------------------------------------------------------------------
# Metadata TX

TX_CONFIG = preset("tiny")           # 4-byte beats, 16-byte SRAM lines
TX_LINE_BYTES = 8                    # blob bytes per EMBEDDED long packet (small: short packets)


def build_metadata_tx(m, ps, mutation):
    """Metadata TX (hw/metadata_tx.py) with 8-byte blob packets.

    Environment: any commands (stream rules); an SRAM that accepts reads whenever the solver
    says and returns a line of any content exactly ``sram_read_latency(TX_CONFIG)`` cycles after
    each accepted read (so tables, tensor sizes and bytes are arbitrary).
    """
    from hw.metadata_tx import MetadataTx
    from hw.npu_if import sram_read_latency

    cfg = TX_CONFIG
    N = cfg.csi2_lanes_bytes
    dut = MetadataTx(cfg, line_bytes=TX_LINE_BYTES)
    m.submodules.dut = dut
    free = []
    cmd = in_tap(m, dut.cmd, mutation, free, "cmd")
    o = out_tap(m, dut.o, mutation, free)
    props.stream_rules(ps, m, cmd, "cmd", dut_drives=False)
    props.stream_rules(ps, m, o, "o", dut_drives=True)
    rdq = out_tap(m, dut.rd.req, mutation, free, "rd")
    props.stream_rules(ps, m, rdq, "rd.req", dut_drives=True)
    free.append(dut.rd.rdata)
    acc = rdq.valid & rdq.ready
    v = acc
    for k in range(sram_read_latency(cfg)):
        v = props.past(m, v, f"rd_pipe{k}")
    m.d.comb += dut.rd.rvalid.eq(v)

    # packet framing on the output: the first beat of a burst is the packet header
    beat = o.payload
    xfer = o.valid & o.ready
    at_start = Signal(init=1, name="tx_at_burst_start")
    nbytes = Signal(16, name="tx_burst_bytes")       # bytes of the burst before this beat
    want = Signal(17, name="tx_burst_want")          # expected total of the open burst
    with m.If(xfer):
        m.d.sync += at_start.eq(beat.last)
        m.d.sync += nbytes.eq(Mux(beat.last, 0, nbytes + N))
    dt = beat.data[0][:6]
    wc = Cat(beat.data[1], beat.data[2])
    long_ = dt >= 0x10
    want_now = Mux(at_start, Mux(long_, wc + 6, 4), want)
    with m.If(xfer & at_start):
        m.d.sync += want.eq(want_now)
    here = Mux(beat.last, beat.n, N)
    total = nbytes + here
    ps.check("tx.packet_length",
             ~xfer | Mux(beat.last, total == want_now, total < want_now),
             "every packet is exactly its header's length (4 bytes short; 4 + WC + 2 long)")
    # image lines (RAW8) are image_row_bytes long; only the blob is cut at line_bytes
    blob = dt == DataType.EMBEDDED.value
    ps.check("tx.wc_le_line", ~(xfer & at_start & blob) | (wc <= TX_LINE_BYTES),
             f"no blob (EMBEDDED) packet longer than line_bytes ({TX_LINE_BYTES})")
    ps.cover("tx.fs", xfer & at_start & (dt == DataType.FS.value))
    ps.cover("tx.long_packet_done", xfer & beat.last & ~at_start & (want >= 7))
    return free


register(Block(
    name="metadata_tx", build=build_metadata_tx, depth=18, cover_depth=18,
    bmc_only=("tx.packet_length", "tx.wc_le_line"),
    doc="metadata TX, 8-byte blob packets, any SRAM content",
    mutations={
        "o_valid_drop": ["o.valid_held"],
        "o_payload_glitch": ["o.payload_stable"],
        "o_dup_beat": ["tx.packet_length", "tx.wc_le_line"],
        "rd_valid_drop": ["rd.req.valid_held"],
        "rd_payload_glitch": ["rd.req.payload_stable"],
    },
))


# ---------------------------------------------------------------------------------------------
# SoC frame sequencing: hook (not registered)

def build_soc_frame_sequencing(m, ps, mutation):  # pragma: no cover - hook, see docstring
    """HOOK, not registered in BLOCKS: the SoC's frame-sequencing properties.

    The frame sequencer of hw/soc.py is written inline in :class:`hw.soc.Soc`, the whole die
    (RX + ISP + tensor writer + NPU + metadata TX + SRAM), far beyond what the solver unrolls to
    the depth of one frame. Once the sequencer is its own ``wiring.Component`` (inputs: the RX
    status records, tensor-written, NPU done/error, TX idle; outputs: NPU start, TX command), a
    wrapper here should attach, with the free environment driving those inputs:

    * ``seq.one_tx_per_frame``: exactly one TX command per RX status record, in order, with a
      frame counter that increments by one (``props.count`` on both, compared);
    * ``seq.flagged_not_inferred``: a record with flags never starts the NPU;
    * ``seq.timeout_invalid``: FS to NPU done beyond FRAME_BUDGET gives a TX command with VALID
      clear (``props.bounded_response`` on the budget);
    * ``seq.no_merge``: no TX command carries two frames' results;
    * the stream rules on its command ports (``props.attach_stream_rules``).
    """
    raise NotImplementedError("hw.soc frame sequencer: not a separate component yet")

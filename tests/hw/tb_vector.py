"""cocotb bench of hw.vector.VectorUnit against sim.isa_sim.IsaSim (run by tests/hw/test_vector.py).

A Python SRAM model serves the unit's read port (fixed ``sram_read_latency(config)``, random
``req.ready`` back-pressure) and write port (random back-pressure, byte masks). Random instructions
of every vector opcode (random shapes, alignments, paddings, zero points, realistic requant
parameters) run on a random SRAM image; after each one the whole SRAM must equal IsaSim's after the
same instruction on the same image (so only the output bytes may change). The unit's protocol is
checked every cycle: ``cmd.ready == idle``, ``idle`` low from the cycle after the handshake until
the instruction is complete, no SRAM request and no read in flight while idle, ``error`` only for a
foreign opcode. With ``model_tol`` each instruction's cycles must match the cycle model
(``sim.isa_sim.instr_cost``) within that fraction (run it without back-pressure).
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hw.config import Config
from hw.isa import EltMode, Opcode, PoolMode, Timing, encode
from hw.npu_if import line_bytes
from sim.cocotb_run import tb_params
from sim.isa_sim import IsaSim, SimError, instr_cost
from tests.hw.tb_common import SramModel, wait_until

#: cocotb ``timeout_time`` of this bench's tests in simulated ms (a backstop behind the
#: bounded waits, 100 k cycles per ms): 30 tiny instructions take 0.03 ms; the full tier runs
#: 150 and the default preset's big shapes.
TIMEOUT_MS = 50


class Bench:
    def __init__(self, dut, cfg: Config, rng: random.Random, ready_p: float, wready_p: float):
        self.dut, self.cfg, self.rng = dut, cfg, rng
        self.W = line_bytes(cfg)
        self.mem = np.zeros(cfg.sram_bytes, np.uint8)
        self.ready_p, self.wready_p = ready_p, wready_p
        self.cycle = 0
        self.sram_model = SramModel(dut, cfg, rng, self.mem)
        self.sram_model.rd_ready_p, self.sram_model.wr_ready_p = ready_p, wready_p
        self.stalls = self.macs = 0

    @property
    def reads(self) -> int:
        return self.sram_model.reads

    @property
    def writes(self) -> int:
        return self.sram_model.writes

    async def step(self, drive=None):
        """One clock cycle: drive after the edge, sample in the read-only phase."""
        dut = self.dut
        await RisingEdge(dut.clk)
        self.cycle += 1
        for k, v in (drive or {}).items():
            getattr(dut, k).value = v
        self.sram_model.drive(self.cycle)
        await ReadOnly()
        self.sram_model.sample(self.cycle)
        self.stalls += int(dut.stall.value)
        self.macs += int(dut.macs.value)
        assert int(dut.cmd__ready.value) == int(dut.idle.value), "cmd.ready != idle"
        if int(dut.idle.value):
            assert not int(dut.rd__req__valid.value), "read request while idle"
            assert not int(dut.wr__req__valid.value), "write request while idle"
            assert not self.sram_model.in_flight, "read in flight while idle"

    def state(self) -> str:
        """The unit's handshakes and the bench's counters, for failure messages."""
        d = self.dut
        return (f"cycle {self.cycle}: idle={int(d.idle.value)} cmd.ready={int(d.cmd__ready.value)}"
                f" error={int(d.error.value)} rd.req valid={int(d.rd__req__valid.value)} "
                f"wr.req valid={int(d.wr__req__valid.value)}; reads {self.reads} writes "
                f"{self.writes} stalls {self.stalls} macs {self.macs} responses in flight "
                f"{self.sram_model.in_flight}")

    async def execute(self, word: int, max_cycles: int, what: str = "") -> int:
        """Issue one instruction (``what`` names it in failure messages); returns cycles from the
        handshake to idle. The unit must take the command within :data:`CMD_WAIT` cycles and be
        idle again ``max_cycles`` cycles after the handshake (StuckError otherwise)."""
        dut = self.dut
        await RisingEdge(dut.clk)
        dut.cmd__payload.value = word
        dut.cmd__valid.value = 1
        await ReadOnly()
        await wait_until(dut, lambda: int(dut.cmd__ready.value), CMD_WAIT,
                         f"vector cmd.ready for {what or hex(word)}", self.state, self.step)
        start = self.cycle
        await RisingEdge(dut.clk)
        self.cycle += 1
        dut.cmd__valid.value = 0
        # the cycle after the handshake: idle must be low (the step samples after the edge)
        dut.rd__req__ready.value = int(self.rng.random() < self.ready_p)
        dut.wr__req__ready.value = 0
        dut.rd__rvalid.value = 0
        await ReadOnly()
        assert not int(dut.idle.value), "idle high the cycle after the handshake"
        self.sram_model.sample(self.cycle)  # a read request may be taken; no write (ready 0)
        await wait_until(dut, lambda: int(dut.idle.value), max_cycles,
                         f"vector idle after {what or hex(word)}", self.state, self.step)
        return self.cycle - start


#: Cycles an idle unit may take to accept a command (``cmd.ready == idle``: it takes it at once).
CMD_WAIT = 8
#: Bound of an instruction without a reference cost (IsaSim rejects it): cycles.
NO_REF_CYCLES = 200000


def max_cycles(cost: int, ready_p: float) -> int:
    """Cycle bound of one instruction from its cycle-model cost: 20x the cost at the bench's
    worst ready probability, plus a constant (a bound, never a performance figure)."""
    return 5000 + int(20 * cost / max(0.05, ready_p))


# ---------------------------------------------------------------------------------------- stimulus
class Alloc:
    def __init__(self, rng, W, size):
        self.rng, self.W, self.size, self.ptr = rng, W, size, rng.randrange(0, 64)

    def __call__(self, n: int) -> int:
        a = self.ptr + self.rng.randrange(0, 2 * self.W)
        self.ptr = a + max(n, 1)
        if self.ptr > self.size:
            raise ValueError("region too small")
        return a


def params_blob(nrng, n, shift_lo=-12, shift_hi=2):
    bias = nrng.integers(-(1 << 14), 1 << 14, size=n)
    mult = nrng.integers(1 << 30, (1 << 31) - 1, size=n)
    shift = nrng.integers(shift_lo, shift_hi + 1, size=n)
    return np.stack([bias, mult, shift], axis=1).astype("<i4").tobytes()


def act_range(rng, zp):
    r = rng.random()
    if r < 0.5:
        return -128, 127
    if r < 0.8:
        return max(-128, zp), 127
    return max(-128, zp), min(127, zp + rng.randrange(20, 120))


def window(rng, n_in, k, stride, pad_limit=True):
    pt = rng.randrange(0, k) if k > 1 else 0
    pb = rng.randrange(0, k) if k > 1 else 0
    if pt > 15:
        pt = 15
    out = (n_in + pt + pb - k) // stride + 1
    return max(1, out), pt


def gen(rng: random.Random, cfg: Config, op: Opcode, region: int, big: bool,
        edge: bool = False):
    """(instruction dict, image bytes written into the region)."""
    W, L = line_bytes(cfg), cfg.vector_lanes
    nrng = np.random.default_rng(rng.getrandbits(32))
    img = nrng.integers(0, 256, size=region, dtype=np.uint8)
    al = Alloc(rng, W, region)
    hw_max = 12 if big else 7
    if op in (Opcode.DWCONV, Opcode.POOL):
        c = rng.randrange(1, (4 if big else 3) * L + 2)
        dm = rng.choice([1, 1, 1, 2, 3]) if op == Opcode.DWCONV else 1
        if op == Opcode.DWCONV and c * dm > 4 * L:
            dm = 1
        h, w = rng.randrange(1, hw_max + 1), rng.randrange(1, hw_max + 1)
        kind = rng.random()
        if kind < 0.15:   # global (MEAN-like)
            kh, kw, sh, sw, oh, ow, pt, pl = h, w, 1, 1, 1, 1, 0, 0
        else:
            if kind < 0.6:
                kh = kw = 3
            else:
                kh, kw = rng.randrange(1, 5), rng.randrange(1, 5)
            sh, sw = rng.choice([1, 1, 2, 2, 3]), rng.choice([1, 1, 2, 2, 3])
            if kind < 0.6 and rng.random() < 0.7:
                sw = sh
            oh, pt = window(rng, h, kh, sh)
            ow, pl = window(rng, w, kw, sw)
        if edge:
            r = rng.random()
            if op == Opcode.DWCONV and r < 0.2:
                dm, c = rng.randrange(4, 16), rng.randrange(1, 3)
            elif r < 0.4:   # big global kernel (MEAN)
                h, w = rng.randrange(6, 13), rng.randrange(6, 13)
                kh, kw, sh, sw, oh, ow, pt, pl = h, w, 1, 1, 1, 1, 0, 0
            elif r < 0.55:  # a zero-size dimension: nothing is written
                z = rng.randrange(4)
                oh, ow, c = (0 if z == 0 else oh), (0 if z == 1 else ow), (0 if z == 2 else c)
                if z == 3:
                    kh, kw = (0, kw) if op == Opcode.DWCONV else (kh, kw)
            elif r < 0.8 and op == Opcode.DWCONV:  # deep padding: windows only in padding
                pt, pl = rng.randrange(0, 16), rng.randrange(0, 16)
                sh, sw = rng.randrange(1, 8), rng.randrange(1, 8)
                oh, ow = rng.randrange(1, 6), rng.randrange(1, 6)
            elif r < 0.8:   # big strides and kernels
                k, s_ = rng.randrange(1, 9), rng.randrange(1, 16)
                h = w = rng.randrange(1, 20)
                kh = kw = k
                sh = sw = s_
                oh, pt = window(rng, h, k, s_)
                ow, pl = oh, pt
        co = c * dm
        ins = {"in_h": h, "in_w": w, "in_c": c, "out_h": oh, "out_w": ow, "k_h": kh, "k_w": kw,
               "stride_h": sh, "stride_w": sw, "pad_top": pt, "pad_left": pl}
        ins["in_addr"] = al(h * w * c)
        if op == Opcode.DWCONV:
            ins["opcode"] = Opcode.DWCONV
            ins["depth_mult"] = dm
            ins["w_addr"] = al(kh * kw * co)
            ins["p_addr"] = pa = al(12 * co)
            lo_shift = -12 if kh * kw <= 16 else -16
            img[pa:pa + 12 * co] = np.frombuffer(params_blob(nrng, co, lo_shift, -4
                                                             if rng.random() < 0.8 else 2),
                                                 np.uint8)
            ins["in_zp"] = rng.randrange(-128, 128)
            ins["out_zp"] = zp = rng.randrange(-128, 128)
        else:
            ins["opcode"] = Opcode.POOL
            ins["mode"] = rng.choice([PoolMode.AVG, PoolMode.MAX])
            zp = rng.randrange(-128, 128)
        ins["act_min"], ins["act_max"] = act_range(rng, zp)
        ins["out_addr"] = al(oh * ow * co)
    elif op == Opcode.ELTWISE:
        r = rng.random()
        per = 0 if r < 0.4 else (1 if r < 0.6 else rng.randrange(1, 3 * L + 2))
        count = rng.randrange(1, (200 if big else 48))
        if edge and rng.random() < 0.5:
            per = rng.choice([L - 1, L, L + 1, 2 * L, 2 * L + 1, 1]) or 1
            count = per * rng.randrange(1, 6)
        if per:
            count = per * max(1, count // per)
        if edge and rng.random() < 0.1:
            count = 0
        mode = rng.choice([EltMode.ADD, EltMode.MUL])
        zpa, zpb, zpo = (rng.randrange(-128, 128) for _ in range(3))
        ins = {"opcode": Opcode.ELTWISE, "mode": mode, "b_period": per, "count": count}
        ins["a_addr"] = al(count)
        ins["b_addr"] = al(per or count)
        ins["p_addr"] = pa = al(48)
        lo, hi = act_range(rng, zpo)
        m = lambda: rng.randrange(1 << 30, (1 << 31) - 1)  # noqa: E731
        if mode == EltMode.ADD:
            p = [-zpa, m(), rng.randrange(-3, 1), -zpb, m(), rng.randrange(-3, 1), 20, m(),
                 rng.randrange(-22, -15), zpo, lo, hi]
        else:
            p = [-zpa, 0, 0, -zpb, 0, 0, 0, m(), rng.randrange(-12, -5), zpo, lo, hi]
        img[pa:pa + 48] = np.frombuffer(np.array(p, "<i4").tobytes(), np.uint8)
        ins["out_addr"] = al(count) if rng.random() < 0.8 else ins["a_addr"]
    elif op == Opcode.LUT:
        count = rng.randrange(1, 100 if big else 40)
        if edge and rng.random() < 0.2:
            count = 0
        ins = {"opcode": Opcode.LUT, "count": count, "lut_addr": al(256), "in_addr": al(count)}
        ins["out_addr"] = al(count) if rng.random() < 0.8 else ins["in_addr"]
    elif op == Opcode.VMATMUL:
        mm = rng.randrange(1, 4)
        k = rng.randrange(1, (6 if big else 3) * L + 4)
        n = rng.randrange(1, (4 if big else 3) * L + 2)
        if edge and rng.random() < 0.4:
            z = rng.randrange(3)
            mm, k, n = (0 if z == 0 else mm), (0 if z == 1 else k), (0 if z == 2 else n)
        ins = {"opcode": Opcode.VMATMUL, "m": mm, "k": k, "n": n}
        ins["in_addr"] = al(mm * k)
        ins["w_addr"] = al(n * k)
        ins["p_addr"] = pa = al(12 * n)
        img[pa:pa + 12 * n] = np.frombuffer(params_blob(nrng, n, -14, -5), np.uint8)
        ins["out_zp"] = zp = rng.randrange(-128, 128)
        ins["act_min"], ins["act_max"] = act_range(rng, zp)
        ins["out_addr"] = al(mm * n)
    else:
        raise ValueError(op)
    return ins, img


def fixed(rng: random.Random, cfg: Config, spec: dict, region: int):
    """A given shape (``spec``: opcode name and shape fields) with random data and parameters."""
    W = line_bytes(cfg)
    nrng = np.random.default_rng(rng.getrandbits(32))
    img = nrng.integers(0, 256, size=region, dtype=np.uint8)
    al = Alloc(rng, W, region)
    ins = dict(spec)
    op = ins["opcode"] = Opcode[ins["opcode"]]
    if isinstance(ins.get("mode"), str):
        ins["mode"] = PoolMode[ins["mode"]]
    if op in (Opcode.DWCONV, Opcode.POOL):
        co = ins["in_c"] * ins.get("depth_mult", 1)
        ins["in_addr"] = al(ins["in_h"] * ins["in_w"] * ins["in_c"])
        ins["out_addr"] = al(ins["out_h"] * ins["out_w"] * co)
        ins["act_min"], ins["act_max"] = -128, 127
        if op == Opcode.DWCONV:
            ins["in_zp"] = rng.randrange(-128, 128)
            ins["out_zp"] = rng.randrange(-128, 128)
            ins["w_addr"] = al(ins["k_h"] * ins["k_w"] * co)
            ins["p_addr"] = pa = al(12 * co)
            img[pa:pa + 12 * co] = np.frombuffer(params_blob(nrng, co, -12, -6), np.uint8)
    elif op in (Opcode.ELTWISE, Opcode.LUT):
        n = ins["count"]
        ins["in_addr" if op == Opcode.LUT else "a_addr"] = al(n)
        ins["out_addr"] = al(n)
        if op == Opcode.LUT:
            ins["lut_addr"] = al(256)
        else:
            ins["b_addr"] = al(ins.get("b_period") or n)
            ins["p_addr"] = pa = al(48)
            p = [3, 1 << 30, -1, -5, 1 << 30, -1, 20, 1 << 30, -18, 1, -128, 127]
            img[pa:pa + 48] = np.frombuffer(np.array(p, "<i4").tobytes(), np.uint8)
    elif op == Opcode.VMATMUL:
        ins["in_addr"] = al(ins["m"] * ins["k"])
        ins["w_addr"] = al(ins["n"] * ins["k"])
        ins["p_addr"] = pa = al(12 * ins["n"])
        img[pa:pa + 12 * ins["n"]] = np.frombuffer(params_blob(nrng, ins["n"], -14, -6),
                                                   np.uint8)
        ins["out_addr"] = al(ins["m"] * ins["n"])
        ins["act_min"], ins["act_max"] = -128, 127
    return ins, img


OPS = [Opcode.DWCONV, Opcode.POOL, Opcode.ELTWISE, Opcode.LUT, Opcode.VMATMUL]


async def reset(dut, bench):
    for name in ("cmd__valid", "rd__req__ready", "wr__req__ready", "rd__rvalid"):
        getattr(dut, name).value = 0
    dut.cmd__payload.value = 0
    dut.rd__rdata.value = 0
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def vector_random(dut):
    p = tb_params()
    cfg = Config(**p["config"])
    # the program's draws and the ports' ready draws come from two generators, so the program
    # is a function of the seed alone: drawing both from one made a change of the unit's
    # cycles (one ready draw per cycle) change every later instruction
    rng = random.Random(p["seed"])
    ops = [Opcode[o] for o in p.get("ops", [o.name for o in OPS])]
    Clock(dut.clk, 10, unit="ns").start()
    bench = Bench(dut, cfg, random.Random(f"ready-{p['seed']}"), p.get("ready", 0.7),
                  p.get("wready", 0.7))
    await reset(dut, bench)
    timing = Timing(cfg)
    region = p.get("region", 16384)
    counts: dict[str, int] = {}
    report = []
    specs = p.get("fixed", [])
    for it in range(p["n"] + len(specs)):
        if it < len(specs):
            ins, img = fixed(rng, cfg, specs[it], region)
            op = ins["opcode"]
        else:
            op = ops[it % len(ops)]
            ins, img = gen(rng, cfg, op, region, p.get("big", False),
                           edge=rng.random() < p.get("edge", 0.0))
        bench.mem[:] = 0
        bench.mem[:region] = img
        sim = IsaSim(cfg, [ins, {"opcode": Opcode.DONE}], [(0, img.tobytes())])
        word = int.from_bytes(encode(ins), "little")
        try:
            if op in (Opcode.DWCONV, Opcode.POOL) and not (ins["out_h"] and ins["out_w"]):
                # IsaSim's slicing with out_h - 1 = -1 is no reference for an empty output
                raise SimError("empty output")
            with np.errstate(all="ignore"):
                sim.run()
        except (SimError, ZeroDivisionError):   # a corner the reference rejects: the unit must
            # still complete (no hang), nothing compared
            await bench.execute(word, NO_REF_CYCLES, f"{op.name} #{it} {ins}")
            counts["no_reference"] = counts.get("no_reference", 0) + 1
            continue
        r0, s0 = bench.reads, bench.stalls
        bound = max_cycles(instr_cost(sim.program[0], timing),
                           min(bench.ready_p, bench.wready_p))
        cyc = await bench.execute(word, bound, f"{op.name} #{it} {ins}")
        rd_n, st_n = bench.reads - r0, bench.stalls - s0
        got = bench.mem.view(np.int8)
        if not np.array_equal(got, sim.sram):
            bad = np.nonzero(got != sim.sram)[0]
            raise AssertionError(
                f"{op.name} #{it} {ins}: {bad.size} bytes differ, first at {bad[:8]}: "
                f"got {got[bad[:8]]}, want {sim.sram[bad[:8]]}")
        assert not int(dut.error.value)
        counts[op.name] = counts.get(op.name, 0) + 1
        report.append((op.name, cyc, instr_cost(sim.program[0], timing), rd_n, st_n, ins))
    # a foreign opcode sets error (sticky) and leaves the unit idle
    for _ in range(4):
        await bench.step()
    word = int.from_bytes(encode({"opcode": Opcode.CONV}), "little")
    await bench.step({"cmd__payload": word, "cmd__valid": 1})
    await bench.step({"cmd__valid": 0})
    for _ in range(3):
        await bench.step()
    assert int(dut.error.value) and int(dut.idle.value)
    dut._log.info(f"bit-exact: {counts}; reads {bench.reads} writes {bench.writes} "
                  f"stall cycles {bench.stalls} macs {bench.macs}")
    if p.get("dump"):
        import json

        with open(p["dump"], "w") as fh:
            json.dump([(name, cyc, model) for name, cyc, model, *_ in report], fh)
    if p.get("model_tol") is not None:
        # the cycle model (sim.isa_sim.instr_cost) against the RTL's handshake-to-idle cycles
        # (meaningful without back-pressure): within model_tol, or model_slack cycles for the
        # short instructions whose fixed latency dominates
        tol, slack = p["model_tol"], p.get("model_slack", 3)
        off = [(name, cyc, model) for name, cyc, model, *_ in report
               if abs(model - cyc) > max(slack, tol * cyc)]
        assert not off, f"(op, RTL cycles, model cycles) off by > {tol:.0%}: {off}"
    show = report[:len(specs)] + report[len(specs):][:p.get("show", 12)]
    for name, cyc, model, rd_n, st_n, ins in show:
        shape = {k: v for k, v in ins.items() if k in ("in_h", "in_w", "in_c", "k_h", "k_w",
                                                         "stride_h", "stride_w", "count", "m",
                                                         "k", "n", "depth_mult", "out_h",
                                                         "out_w", "pad_top", "pad_left",
                                                         "in_addr", "w_addr", "p_addr")}
        dut._log.info(f"{name:8s} cycles {cyc:6d} model {model:6d} reads {rd_n:5d} "
                      f"stalls {st_n:5d} {shape}")

"""cocotb bench of hw.dma.LoadUnit / StoreUnit (run by tests/hw/test_dma.py) against IsaSim.

The bench models the SRAM ports (random request back-pressure, responses exactly
``sram_read_latency(config)`` cycles after acceptance, masked line writes) and, for LOAD, the conv
unit's buffer write port (random back-pressure). Each random instruction runs on the unit and on
``sim.isa_sim.IsaSim`` from the same SRAM image: the SRAM (STORE) or the WBUF/PBUF slots (LOAD,
bytes past ``nbytes`` must keep their previous value) must be equal. The unit-port protocol is
checked every cycle (idle low from the cycle after the handshake until done, no request while idle,
cmd.ready only while idle); wrong opcodes, oversize LOADs and accesses past the SRAM set the sticky
error.
"""

from __future__ import annotations

import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from hw.config import Config
from hw.isa import BufSel, Opcode, buffer_sizes, encode
from hw.npu_if import buf_words, line_bytes
from sim.cocotb_run import tb_params
from sim.isa_sim import IsaSim
from tests.hw.tb_common import (
    TEST_TIMEOUT_MS,
    SramModel,
    StuckError,
    reset,
    start_clock,
    wait_until,
)


class Bench:
    def __init__(self, dut, cfg: Config, rng: random.Random, unit: str, ready_p: float):
        self.dut, self.cfg, self.rng, self.unit = dut, cfg, rng, unit
        self.W = line_bytes(cfg)
        self.BA = max(1, (buf_words(cfg) - 1).bit_length())
        self.mem = np.zeros(cfg.sram_bytes, np.uint8)
        sizes = buffer_sizes(cfg)
        self.bufs = {(b, s): np.zeros(sizes["pbuf_slot" if b else "wbuf_slot"], np.uint8)
                     for b in (0, 1) for s in (0, 1)}
        self.ready_p = ready_p
        self.cycle = 0
        self.has_wr = unit == "store"
        self.sram_model = SramModel(dut, cfg, rng, self.mem, wr="wr" if self.has_wr else None)
        self.sram_model.rd_ready_p = self.sram_model.wr_ready_p = ready_p
        self.buf_writes = self.stalls = 0

    @property
    def reads(self) -> int:
        return self.sram_model.reads

    @property
    def writes(self) -> int:
        return self.sram_model.writes + self.buf_writes

    def _drive_ready(self):
        self.sram_model.drive(self.cycle)
        if not self.has_wr:
            self.dut.buf__req__ready.value = int(self.rng.random() < self.ready_p)

    def _sample(self):
        dut, W = self.dut, self.W
        self.sram_model.sample(self.cycle)
        v = dut.wr__req__valid if self.has_wr else dut.buf__req__valid
        if not self.has_wr and int(v.value) and int(dut.buf__req__ready.value):
            # the conv unit's buffer write port: {buf, slot, addr (word), data, mask}
            p, ab = int(dut.buf__req__payload.value), 2 + self.BA
            buf, slot = p & 1, p >> 1 & 1
            a = p >> 2 & ((1 << self.BA) - 1)
            target, base = self.bufs[(buf, slot)], a * W
            d = ((p >> ab) & ((1 << (8 * W)) - 1)).to_bytes(W, "little")
            mask = p >> (ab + 8 * W)
            for i in range(W):
                if mask >> i & 1:
                    assert base + i < target.size, f"write past the target at {base + i}"
                    target[base + i] = d[i]
            self.buf_writes += 1
        self.stalls += int(dut.stall.value)
        assert int(dut.macs.value) == 0
        if int(dut.cmd__ready.value):
            assert int(dut.idle.value), "cmd.ready while not idle"
        if int(dut.idle.value):
            assert not int(dut.rd__req__valid.value), "read request while idle"
            assert not int(v.value), "write request while idle"
            assert not self.sram_model.in_flight, "read in flight while idle"

    async def step(self, drive=None):
        await RisingEdge(self.dut.clk)
        self.cycle += 1
        for k, val in (drive or {}).items():
            getattr(self.dut, k).value = val
        self._drive_ready()
        await ReadOnly()
        self._sample()

    def state(self) -> str:
        """The unit's handshakes and the bench's counters, for failure messages."""
        d = self.dut
        port = "wr" if self.has_wr else "buf"
        req = getattr(d, f"{port}__req__valid"), getattr(d, f"{port}__req__ready")
        return (f"cycle {self.cycle}: idle={int(d.idle.value)} cmd.ready={int(d.cmd__ready.value)}"
                f" error={int(d.error.value)} rd.req valid/ready={int(d.rd__req__valid.value)}/"
                f"{int(d.rd__req__ready.value)} {port}.req valid/ready={int(req[0].value)}/"
                f"{int(req[1].value)}; reads {self.reads} writes {self.writes} "
                f"responses in flight {self.sram_model.in_flight}")

    async def execute(self, ins: dict, max_cycles: int) -> int:
        """Issue one instruction; returns the cycles from the handshake to idle. The unit must
        take the command within :data:`CMD_WAIT` cycles and be idle again ``max_cycles`` cycles
        after the handshake (:class:`~tests.hw.tb_common.StuckError` otherwise)."""
        dut = self.dut
        word = int.from_bytes(encode(ins), "little")
        await self.step({"cmd__payload": word, "cmd__valid": 1})
        await wait_until(dut, lambda: int(dut.cmd__ready.value), CMD_WAIT,
                         f"{self.unit.upper()} cmd.ready for {ins}", self.state, self.step)
        start = self.cycle
        await self.step({"cmd__valid": 0})
        if not int(dut.error.value):
            assert not int(dut.idle.value), "idle high the cycle after the handshake"
        await wait_until(dut, lambda: int(dut.idle.value), max_cycles - 1,
                         f"{self.unit.upper()} idle after {ins}", self.state, self.step)
        return self.cycle - start


#: Cycles an idle unit may take to accept a command (it is combinationally ready when idle).
CMD_WAIT = 8


def max_cycles(cfg: Config, ins: dict, ready_p: float) -> int:
    """Cycle bound of one instruction: every line it reads and writes at the worst of the bench's
    ready probabilities, 10x over, plus a constant for the pipeline (a bound, not a figure)."""
    W = line_bytes(cfg)
    if ins["opcode"] == Opcode.LOAD:
        lines = 2 * (ins["nbytes"] // W + 2)
    else:
        lines = ins["rows"] * ins.get("planes", 1) * 2 * (ins["row_bytes"] // W + 2)
    return 200 + int(10 * lines / max(ready_p, 0.05))


def gen_store(rng: random.Random, region: int) -> dict:
    if rng.random() < 0.3:
        rows = rng.randint(1, 5)
        rb = rng.choice([1, 2, 3, rng.randint(1, 200)])
        stride = rb + rng.randint(0, 30)
        dst = rng.randrange(0, region - rows * stride)
        return {"opcode": Opcode.FILL, "dst_addr": dst, "row_bytes": rb, "rows": rows,
                "dst_row_stride": stride, "value": rng.randint(-128, 127)}
    planes, rows = rng.randint(1, 3), rng.randint(1, 4)
    rb = rng.choice([1, 2, rng.randint(1, 40), rng.randint(1, 300)])
    srs, drs = rb + rng.randint(0, 20), rb + rng.randint(0, 20)
    sps, dps = rows * srs + rng.randint(0, 50), rows * drs + rng.randint(0, 50)
    sspan = (planes - 1) * sps + (rows - 1) * srs + rb
    dspan = (planes - 1) * dps + (rows - 1) * drs + rb
    # Source and destination spans never overlap (a self-overlapping COPY is undefined): place
    # the first span in the room left by both, the second after it. (Drawing dst first and
    # retrying src until it fits span-free never ends when dst sits mid-region and both spans
    # are long: the ecp5-store hang of issue 18.)
    first = rng.randrange(0, region - sspan - dspan + 1)
    if rng.random() < 0.5:
        src = first
        dst = rng.randrange(src + sspan, region - dspan + 1)
    else:
        dst = first
        src = rng.randrange(dst + dspan, region - sspan + 1)
    return {"opcode": Opcode.COPY, "src_addr": src, "dst_addr": dst, "row_bytes": rb,
            "rows": rows, "planes": planes, "src_row_stride": srs, "src_plane_stride": sps,
            "dst_row_stride": drs, "dst_plane_stride": dps}


def gen_load(rng: random.Random, cfg: Config, region: int) -> dict:
    sizes = buffer_sizes(cfg)
    buf = rng.randint(0, 1)
    cap = sizes["pbuf_slot" if buf else "wbuf_slot"]
    nb = rng.choice([0, 1, cap, rng.randint(1, min(cap, 64)), rng.randint(1, min(cap, 700))])
    return {"opcode": Opcode.LOAD, "buf": BufSel(buf), "slot": rng.randint(0, 1),
            "sram_addr": rng.randrange(0, region - nb), "nbytes": nb}


async def reset_unit(dut, unit):
    await RisingEdge(dut.clk)
    await reset(dut, ("cmd__valid", "cmd__payload", "rd__req__ready", "rd__rvalid", "rd__rdata",
                      "wr__req__ready" if unit == "store" else "buf__req__ready"), settle=True)


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
async def dma_random(dut):
    p = tb_params()
    cfg = Config(**p["config"])
    unit = p["unit"]
    rng = random.Random(p["seed"])
    start_clock(dut)
    bench = Bench(dut, cfg, rng, unit, p.get("ready", 0.7))
    await reset_unit(dut, unit)
    region = p.get("region", 8192)
    nrng = np.random.default_rng(p["seed"])
    total_bytes = total_cycles = 0
    for it in range(p["n"]):
        bench.mem[:region] = nrng.integers(0, 256, region, dtype=np.uint8)
        ins = gen_store(rng, region) if unit == "store" else gen_load(rng, cfg, region)
        ref = IsaSim(cfg, [ins, {"opcode": Opcode.DONE}], [(0, bench.mem[:region].tobytes())])
        before = {k: v.copy() for k, v in bench.bufs.items()}
        ref.run()
        cyc = await bench.execute(ins, max_cycles(cfg, ins, bench.ready_p))
        assert not int(dut.error.value), f"#{it} {ins}: error"
        if unit == "store":
            got, want = bench.mem, ref.sram.view(np.uint8)
            if not np.array_equal(got, want):
                bad = np.nonzero(got != want)[0]
                raise AssertionError(f"#{it} {ins}: {bad.size} bytes differ, first at "
                                     f"{bad[:8]}: got {got[bad[:8]]}, want {want[bad[:8]]}")
            total_bytes += ins["row_bytes"] * ins["rows"] * ins.get("planes", 1)
        else:
            b, s, n = int(ins["buf"].value), ins["slot"], ins["nbytes"]
            src = (ref.pbuf if b else ref.wbuf)[s].view(np.uint8)
            want = before[(b, s)].copy()
            want[:n] = src[:n]
            for k in bench.bufs:
                exp = want if k == (b, s) else before[k]
                assert np.array_equal(bench.bufs[k], exp), f"#{it} {ins}: buffer {k} differs"
            total_bytes += n
        total_cycles += cyc
    dut._log.info(f"{unit}: {p['n']} instructions bit-exact, {total_bytes} bytes in "
                  f"{total_cycles} cycles ({total_bytes / max(1, total_cycles):.1f} B/cycle, "
                  f"line {bench.W} B), {bench.stalls} stall cycles")
    # errors: a foreign opcode, an oversize LOAD / an access past the SRAM; sticky
    bad = [{"opcode": Opcode.CONV}]
    if unit == "load":
        bad.append({"opcode": Opcode.LOAD, "buf": BufSel.PBUF,
                    "nbytes": buffer_sizes(cfg)["pbuf_slot"] + 1})
        bad.append({"opcode": Opcode.LOAD, "sram_addr": cfg.sram_bytes - 4, "nbytes": 8})
    else:
        bad.append({"opcode": Opcode.FILL, "dst_addr": cfg.sram_bytes - 4, "row_bytes": 8,
                    "rows": 1})
        bad.append({"opcode": Opcode.COPY, "src_addr": 0, "dst_addr": 0, "row_bytes": 8,
                    "rows": 2, "planes": 1, "src_row_stride": cfg.sram_bytes - 4})
    for ins in bad:
        await reset_unit(dut, unit)
        bench.sram_model.resp.clear()
        assert not int(dut.error.value)
        await bench.step({"cmd__payload": int.from_bytes(encode(ins), "little"),
                          "cmd__valid": 1})
        await bench.step({"cmd__valid": 0})
        for _ in range(20):
            await bench.step()
        assert int(dut.error.value), f"{ins}: no error"
        assert int(dut.idle.value), f"{ins}: not idle after the error"


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def dma_stuck(dut):
    """On a unit wrapped by ``tests.hw.test_dma.StuckUnit`` (``idle`` or ``cmd.ready`` held low):
    one random instruction must end in :class:`StuckError` within its cycle bound (the bench
    fails, it does not hang); the message goes to ``stuck.txt`` for the pytest side to check."""
    p = tb_params()
    cfg = Config(**p["config"])
    unit = p["unit"]
    rng = random.Random(p["seed"])
    start_clock(dut)
    bench = Bench(dut, cfg, rng, unit, p.get("ready", 0.7))
    await reset_unit(dut, unit)
    ins = gen_store(rng, 8192) if unit == "store" else gen_load(rng, cfg, 8192)
    bound = max_cycles(cfg, ins, bench.ready_p)
    c0 = bench.cycle
    try:
        await bench.execute(ins, bound)
    except StuckError as e:
        msg = str(e)
    else:
        raise AssertionError(f"the stuck unit completed {ins}")
    waited = bench.cycle - c0
    limit = CMD_WAIT + 1 if p["stuck"] == "ready" else bound + 1
    assert waited <= limit, f"StuckError after {waited} cycles, bound {limit}"
    dut._log.info(f"stuck unit failed the bench after {waited} cycles: {msg}")
    Path("stuck.txt").write_text(f"{waited}\n{msg}\n")

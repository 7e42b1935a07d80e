"""The NPU top through the C++ Verilator harness (sim/harness/npu.py) against sim/isa_sim.py.

Hand-written and random programs of LOAD / COPY / FILL / NOP / SYNC / HOST / DONE with dependency
tokens run on the RTL; the SRAM must equal IsaSim's, the trace must respect the tokens, the CSRs
and counters must read back sensibly, and the host port must give the same SRAM as the backdoor.
One Verilator build (tiny preset) serves the whole module.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw import regmap
from hw.config import preset
from hw.isa import INSTR_BYTES, BufSel, Opcode, buffer_sizes, encode_program
from sim.isa_sim import IsaSim, SimError, schedule

CFG = preset("tiny")
PROG = 0x10000  # program address in these tests
DATA = 0x4000   # random source data [0, DATA); the STORE queue writes [DATA, 2 * DATA)


@pytest.fixture(scope="module")
def sim():
    from sim.harness.npu import NpuSim

    s = NpuSim(CFG)
    yield s
    s.close()


def run_program(sim, prog, image, host_handler=None, port="backdoor", max_cycles=200_000):
    """Run ``prog`` on the RTL and on IsaSim from the same image; return (ref, got SRAM, trace)."""
    raw = encode_program(prog)
    image = list(image) + [(PROG, raw)]
    sim.reset()
    sim.write_mem(0, np.zeros(PROG + len(raw) + 64, np.uint8), port="backdoor")
    sim.load_image(image, port=port)
    sim.start(PROG)
    r = sim.run(max_cycles)
    while r == "host":
        k = sim.host_call
        host_handler(k, sim)
        sim.resume()
        r = sim.run(max_cycles)
    assert r == "done", (r, sim.error())
    # HOST calls without tensors on the reference (the tests apply the host's writes themselves)
    n_calls = 1 + max([i["call"] for i in prog if i["opcode"] == Opcode.HOST], default=-1)
    ref = IsaSim(sim.config, prog, image,
                 host_calls=[{"inputs": [], "outputs": []}] * n_calls,
                 host_handler=lambda k, vals: {})
    ref.run()
    got = sim.read_mem(0, PROG)
    return ref, got, sim.trace()


def rand_data(rng, n=DATA):
    return rng.integers(0, 256, n, dtype=np.uint8)


def random_store_ops(rng, n_ops):
    ops = []
    for _ in range(n_ops):
        if rng.random() < 0.3:
            rows = int(rng.integers(1, 5))
            rb = int(rng.integers(1, 70))
            stride = rb + int(rng.integers(0, 40))
            dst = int(rng.integers(DATA, 2 * DATA - rows * stride))
            ops.append({"opcode": Opcode.FILL, "dst_addr": dst, "row_bytes": rb, "rows": rows,
                        "dst_row_stride": stride, "value": int(rng.integers(-128, 128))})
            continue
        planes = int(rng.integers(1, 4))
        rows = int(rng.integers(1, 5))
        rb = int(rng.integers(1, 90))
        srs = rb + int(rng.integers(0, 50))
        sps = rows * srs + int(rng.integers(0, 100))
        drs = rb + int(rng.integers(0, 50))
        dps = rows * drs + int(rng.integers(0, 100))
        dspan = (planes - 1) * dps + (rows - 1) * drs + rb
        sspan = (planes - 1) * sps + (rows - 1) * srs + rb
        dst = int(rng.integers(DATA, 2 * DATA - dspan))
        while True:  # any source (earlier outputs too) not overlapping this COPY's destination
            src = int(rng.integers(0, 2 * DATA - sspan))
            if src + sspan <= dst or dst + dspan <= src:
                break
        ops.append({"opcode": Opcode.COPY, "src_addr": src, "dst_addr": dst, "row_bytes": rb,
                    "rows": rows, "planes": planes, "src_row_stride": srs,
                    "src_plane_stride": sps, "dst_row_stride": drs, "dst_plane_stride": dps})
    return ops


def random_program(rng, n=24, cfg=CFG):
    """LOADs (reading [0, DATA)), STORE-queue ops (writing [DATA, 2 DATA)), NOPs, SYNCs, with
    random token flags; only programs the ISA's schedule accepts (no deadlock, no hazard)."""
    sizes = buffer_sizes(cfg)
    while True:
        prog = []
        for op in random_store_ops(rng, n):
            u = rng.random()
            if u < 0.25:
                buf = int(rng.integers(0, 2))
                cap = sizes["pbuf_slot" if buf else "wbuf_slot"]
                nb = int(rng.integers(0, min(cap, 300) + 1))
                prog.append({"opcode": Opcode.LOAD, "buf": BufSel(buf),
                             "slot": int(rng.integers(0, 2)),
                             "sram_addr": int(rng.integers(0, DATA - nb)), "nbytes": nb,
                             "push_next": int(rng.random() < 0.3),
                             "pop_next": int(rng.random() < 0.2)})
            elif u < 0.45:
                prog.append({"opcode": Opcode.NOP, "pop_prev": int(rng.random() < 0.3),
                             "pop_next": int(rng.random() < 0.3),
                             "push_prev": int(rng.random() < 0.3),
                             "push_next": int(rng.random() < 0.3)})
            elif u < 0.5:
                prog.append({"opcode": Opcode.SYNC})
            op = dict(op, push_prev=int(rng.random() < 0.3), pop_prev=int(rng.random() < 0.3))
            prog.append(op)
        prog.append({"opcode": Opcode.DONE})
        try:
            schedule(prog, cfg)
        except SimError:
            continue
        return prog


def check_trace(prog, trace):
    """Every instruction issued once and retired after its issue; tokens respected: the k-th pop
    of a pair issues no earlier than the k-th push of that pair retired."""
    assert sorted(trace[:, 0].tolist()) == list(range(len(prog)))
    assert (trace[:, 2] >= trace[:, 1]).all()
    by = {int(i): (int(a), int(b)) for i, a, b in trace}
    from hw.isa import QUEUE_OF, Queue

    pushes: dict = {}
    pops: dict = {}
    for j, ins in enumerate(prog):
        q = QUEUE_OF[Opcode(ins["opcode"])]
        if q == Queue.ALL:
            continue
        q = q.value
        for flag, to in (("push_prev", q - 1), ("push_next", q + 1)):
            if ins.get(flag):
                pushes.setdefault((q, to), []).append(by[j][1])
        for flag, frm in (("pop_prev", q - 1), ("pop_next", q + 1)):
            if ins.get(flag):
                pops.setdefault((frm, q), []).append(by[j][0])
    for k, ps in pops.items():
        pu = sorted(pushes.get(k, []))
        for a, b in zip(sorted(ps), pu, strict=False):
            assert a >= b, f"pop on {k} issued at {a} before the push retired at {b}"


@pytest.mark.parametrize("seed", range(4))
def test_random_dma_programs(sim, seed):
    rng = np.random.default_rng(seed)
    prog = random_program(rng)
    ref, got, trace = run_program(sim, prog, [(0, rand_data(rng).tobytes())])
    exp = ref.sram[:PROG].view(np.uint8)
    bad = np.nonzero(got != exp)[0]
    assert bad.size == 0, f"{bad.size} bytes differ, first at {bad[:8]}"
    check_trace(prog, trace)
    c = sim.counters()
    assert c["INSTRS"] == len(prog)
    assert 0 < c["STORE_BUSY"] < c["CYCLES"]
    assert c["CYCLES"] >= max(trace[:, 2]) - min(trace[:, 1])
    assert c["MACS"] == 0 and c["CONV_BUSY"] == 0 and c["VEC_BUSY"] == 0
    n_loads = sum(1 for i in prog if i["opcode"] == Opcode.LOAD and i["nbytes"])
    assert (c["LOAD_BUSY"] > 0) == (n_loads > 0)



def test_counters_final_when_done_shows(sim):
    """The counter contract of hw/npu.py: a CSR read accepted in the first cycle STATUS.done
    shows already sees every busy cycle's counts (CYCLES = the busy cycles the harness clocked,
    from START's acceptance to done), and nothing is counted after done."""
    prog = [
        {"opcode": Opcode.COPY, "src_addr": 0, "dst_addr": DATA, "row_bytes": 100, "rows": 3,
         "planes": 1, "src_row_stride": 100, "dst_row_stride": 120},
        {"opcode": Opcode.SYNC},
        {"opcode": Opcode.DONE},
    ]
    raw = encode_program(prog)
    sim.reset()
    sim.write_mem(0, np.zeros(PROG + len(raw) + 64, np.uint8), port="backdoor")
    sim.load_image([(0, rand_data(np.random.default_rng(5)).tobytes()), (PROG, raw)],
                   port="backdoor")
    sim.start(PROG)
    first_busy = sim.cycle
    assert sim.run(100_000) == "done"
    busy_cycles = sim.cycle - first_busy
    first = sim.counters()  # its first read is accepted in the cycle done first shows
    assert first["CYCLES"] == busy_cycles, (first["CYCLES"], busy_cycles)
    assert first["INSTRS"] == len(prog) and first["STORE_BUSY"] > 0
    assert sim.counters() == first

def test_unaligned_edges(sim):
    """Every source/destination offset within a line, lengths around the line size."""
    W = sim.W
    rng = np.random.default_rng(7)
    prog = []
    dst = DATA
    for so in range(W):
        for n in (1, W - 1, W, W + 1, 3 * W + 5):
            do = int(rng.integers(0, W))
            dst = (dst + W - 1) // W * W + do
            prog.append({"opcode": Opcode.COPY, "src_addr": 64 + so, "dst_addr": dst,
                         "row_bytes": n, "rows": 1, "planes": 1})
            dst += n + 1
    prog.append({"opcode": Opcode.FILL, "dst_addr": dst + 3, "row_bytes": 2 * W + 1, "rows": 3,
                 "dst_row_stride": 2 * W + 7, "value": -1})
    prog.append({"opcode": Opcode.DONE})
    assert dst < 2 * DATA - 10 * W
    ref, got, _ = run_program(sim, prog, [(0, rand_data(rng).tobytes())])
    assert np.array_equal(got, ref.sram[:PROG].view(np.uint8))


def test_host_call_and_tokens(sim):
    """HOST stops the compute queue (STORE runs on), the host edits SRAM, resume finishes it; a
    COPY popping the HOST's token issues only after the host is done."""
    rng = np.random.default_rng(3)
    src = rand_data(rng)
    prog = [
        {"opcode": Opcode.FILL, "dst_addr": DATA, "row_bytes": 100, "rows": 1, "push_prev": 1},
        {"opcode": Opcode.HOST, "call": 5, "pop_next": 1, "push_next": 1},
        {"opcode": Opcode.COPY, "src_addr": 2 * DATA - 512, "dst_addr": DATA + 200,
         "row_bytes": 64, "rows": 1, "planes": 1, "pop_prev": 1},
        {"opcode": Opcode.NOP},
        {"opcode": Opcode.DONE},
    ]
    host_bytes = np.arange(64, dtype=np.uint8) + 100
    calls = []

    def handler(k, s):
        calls.append((k, s.csr_read("STATUS"), s.counters()["HOST_WAIT"]))
        s.write_mem(2 * DATA - 512, host_bytes, port="host")

    ref, got, trace = run_program(sim, prog, [(0, src.tobytes())], host_handler=handler)
    assert calls and calls[0][0] == 5
    st = calls[0][1]
    assert st >> regmap.STATUS_BITS["host_wait"] & 1 and st >> regmap.STATUS_BITS["busy"] & 1
    # IsaSim's host handler cannot write SRAM here: apply the host's write to the reference
    exp = ref.sram[:PROG].view(np.uint8).copy()
    exp[2 * DATA - 512: 2 * DATA - 448] = host_bytes
    exp[DATA + 200: DATA + 264] = host_bytes
    assert np.array_equal(got, exp)
    by = {int(i): (int(a), int(b)) for i, a, b in trace}
    assert by[2][0] >= by[1][1]          # COPY waited for the HOST's token
    assert by[1][0] >= by[0][1]          # HOST waited for the FILL's token
    assert sim.counters()["HOST_WAIT"] > 0


def test_host_port_equals_backdoor(sim):
    rng = np.random.default_rng(11)
    sim.reset()
    for addr, n in ((0, 64), (3, 1), (5, 70), (1021, 9), (DATA + 2, 333)):
        b = rng.integers(0, 256, n, dtype=np.uint8)
        sim.write_mem(addr, b, port="host")
        assert np.array_equal(sim.read_mem(addr, n, port="backdoor"), b)
        assert np.array_equal(sim.read_mem(addr, n, port="host"), b)
        c = rng.integers(0, 256, n, dtype=np.uint8)
        sim.write_mem(addr, c, port="backdoor")
        assert np.array_equal(sim.read_mem(addr, n, port="host"), c)
    # a whole program uploaded through the host port gives the backdoor's result
    prog = random_program(np.random.default_rng(5), n=10)
    image = [(0, rand_data(np.random.default_rng(6)).tobytes())]
    _, got_bd, _ = run_program(sim, prog, image, port="backdoor")
    _, got_host, _ = run_program(sim, prog, image, port="host")
    assert np.array_equal(got_bd, got_host)


def test_csrs(sim):
    sim.reset()
    assert sim.csr_read("ID") == regmap.ID_MAGIC
    hw = sim.csr_read("HWCFG")
    assert hw & 0xFF == CFG.array_rows and hw >> 8 & 0xFF == CFG.array_cols
    assert hw >> 16 & 0xFF == CFG.vector_lanes and 1 << (hw >> 24) == sim.W
    assert sim.csr_read("SRAM_BYTES") == CFG.sram_bytes
    sim.csr_write("PROG_ADDR", 0x1230)
    assert sim.csr_read("PROG_ADDR") == 0x1230
    assert sim.status() == {"busy": False, "done": False, "host_wait": False, "error": False}


@pytest.mark.parametrize("case", ["bad_opcode", "unit_error", "misaligned", "past_end"])
def test_errors_stop(sim, case):
    """Errors stop the NPU with STATUS.error and the ERROR code; the host never hangs."""
    ok = {"opcode": Opcode.NOP}
    if case == "bad_opcode":
        raw = encode_program([ok, ok]) + (31).to_bytes(INSTR_BYTES, "little")
        code, index, addr = 1, 2, PROG
    elif case == "unit_error":  # LOAD larger than its slot
        big = buffer_sizes(CFG)["pbuf_slot"] + 1
        raw = encode_program([ok, {"opcode": Opcode.LOAD, "buf": BufSel.PBUF, "nbytes": big},
                              {"opcode": Opcode.DONE}])
        code, index, addr = 2, 1, PROG
    elif case == "misaligned":
        raw = encode_program([{"opcode": Opcode.DONE}])
        code, index, addr = 3, 0, PROG + 4
    else:  # runs off the end of the SRAM
        raw = encode_program([ok])
        code, index, addr = 3, 1, CFG.sram_bytes - INSTR_BYTES
    sim.reset()
    sim.write_mem(addr & ~15, raw)
    sim.start(addr)
    assert sim.run(10_000) == "error"
    assert sim.error() == (code, index)
    st = sim.status()
    assert st["error"] and not st["busy"] and not st["done"]
    sim.reset()
    assert not sim.status()["error"]


def test_program_cycles_and_trace_layout(sim):
    """A LOAD -> NOP -> COPY token chain: cycles and trace consistent with the counters."""
    prog = [
        {"opcode": Opcode.LOAD, "buf": BufSel.WBUF, "slot": 0, "sram_addr": 3, "nbytes": 200,
         "push_next": 1},
        {"opcode": Opcode.NOP, "pop_prev": 1, "push_next": 1},
        {"opcode": Opcode.COPY, "src_addr": 0, "dst_addr": DATA, "row_bytes": 256, "rows": 4,
         "planes": 1, "src_row_stride": 256, "dst_row_stride": 300, "pop_prev": 1},
        {"opcode": Opcode.SYNC},
        {"opcode": Opcode.DONE},
    ]
    ref, got, trace = run_program(sim, prog, [(0, rand_data(np.random.default_rng(1)).tobytes())])
    assert np.array_equal(got, ref.sram[:PROG].view(np.uint8))
    by = {int(i): (int(a), int(b)) for i, a, b in trace}
    assert by[0][1] <= by[1][0] and by[1][1] <= by[2][0] and by[2][1] <= by[3][0] <= by[4][0]
    c = sim.counters()
    assert c["INSTRS"] == 5 and c["LOAD_BUSY"] > 0 and c["STORE_BUSY"] > 0
    assert sim.csr_read("FETCH_INDEX") == 4


@pytest.mark.full
@pytest.mark.parametrize("name", ["ice40", "ecp5"])
def test_other_line_widths(name):
    """Fetch of instructions spanning 4 lines (ice40, 8-byte lines) or straddling two (ecp5,
    64-byte lines, programs at 16-byte offsets); DMA programs bit-exact."""
    from sim.harness.npu import NpuSim

    global PROG
    cfg = preset(name)
    with NpuSim(cfg, units="null") as s:
        for seed, prog_addr in ((0, 0x10000), (1, 0x10010), (2, 0x10030)):
            PROG_SAVED, PROG = PROG, prog_addr
            try:
                rng = np.random.default_rng(seed)
                prog = random_program(rng, n=16, cfg=cfg)
                ref, got, trace = run_program(s, prog, [(0, rand_data(rng).tobytes())])
            finally:
                PROG = PROG_SAVED
            assert np.array_equal(got[:2 * DATA], ref.sram[:2 * DATA].view(np.uint8))
            check_trace(prog, trace)


def test_build_index_skips_verilog(sim, monkeypatch):
    """A built harness is found again without generating the Verilog (minutes for ``default``);
    other parameters miss the index and do generate it."""
    from sim import cocotb_run
    from sim.harness import npu

    lib = npu.build(CFG)

    def no_verilog(component, name):
        component._MustUse__used = True     # elaborated on purpose, never converted
        raise RuntimeError("Verilog generated")

    monkeypatch.setattr(cocotb_run, "verilog_of", no_verilog)
    monkeypatch.setattr(npu, "_BUILT", {})
    assert npu.build(CFG) == lib
    with pytest.raises(RuntimeError, match="Verilog generated"):
        npu.build(CFG.replace(sram_bytes=CFG.sram_bytes // 2))

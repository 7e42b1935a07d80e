"""cocotb bench of hw.sram.Sram (run by tests/hw/test_sram.py) against a Python model.

Every read and write master issues random requests (valid held until accepted). The model applies
writes at acceptance and snapshots the line at each read's acceptance; the bench checks: at most one
read and one write granted per cycle, a grant in every cycle with requests (with registered grants,
``Config.sram_arbiter_stages`` = s: never more than s such cycles in a row), each response exactly
``sram_read_latency(config)`` cycles after its acceptance on the requesting master only, data equal
to the model (a read sees every write accepted in an earlier cycle), the round-robin bound (a
requesting master waits for at most n - 1 other grants; n with ``sram_arbiter_stages`` = 2, whose
grant sees a new request a cycle late), and master 0's absolute priority with
``priority0``.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from hw.config import Config
from hw.npu_if import line_addr_bits, line_bytes, sram_read_latency
from sim.cocotb_run import tb_params
from tests.hw.tb_common import TEST_TIMEOUT_MS, reset, start_clock


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
async def sram_random(dut):
    p = tb_params()
    cfg = Config(**p["config"])
    nr, nw, prio = p["n_read"], p["n_write"], p["priority0"]
    groups = p.get("read_groups") or [0] * nr  # read port of each read master
    ngroups = max(groups) + 1
    rng = random.Random(p["seed"])
    W, LA = line_bytes(cfg), line_addr_bits(cfg)
    lines = cfg.sram_bytes // W
    hot = min(lines, 16)  # most traffic on a few lines: reads and writes collide
    mem = np.zeros((lines, W), np.uint8)

    def port(kind, i, name):
        return getattr(dut, f"{kind}__{i}__{name}")

    start_clock(dut)
    await reset(dut, [port("rd", i, "req__valid") for i in range(nr)]
                + [port("wr", i, "req__valid") for i in range(nw)])

    rd_pend = [None] * nr      # request being shown: line address
    wr_pend = [None] * nw      # (addr, data bytes, mask)
    expect = [[] for _ in range(nr)]   # (due cycle, expected line bytes)
    waited_r = [0] * nr        # grants to others while this master requested
    waited_w = [0] * nw
    rate_r, rate_w = p.get("rate_r", 0.6), p.get("rate_w", 0.5)
    n_reads = n_writes = collisions = 0
    staged = cfg.sram_arbiter_stages
    late = int(staged == 2)     # the grant moves on the previous cycle's requests
    idle_r, idle_w = [0] * ngroups, 0   # cycles in a row with requests and no grant
    cycle = 0
    for cycle in range(p["cycles"]):
        await RisingEdge(dut.clk)
        for i in range(nr):
            if rd_pend[i] is None and rng.random() < rate_r:
                rd_pend[i] = rng.randrange(hot) if rng.random() < 0.8 else rng.randrange(lines)
            port("rd", i, "req__valid").value = int(rd_pend[i] is not None)
            if rd_pend[i] is not None:
                port("rd", i, "req__payload").value = rd_pend[i]
        for i in range(nw):
            if wr_pend[i] is None and rng.random() < rate_w:
                a = rng.randrange(hot) if rng.random() < 0.8 else rng.randrange(lines)
                d = bytes(rng.getrandbits(8) for _ in range(W))
                mask = rng.getrandbits(W) if rng.random() < 0.7 else (1 << W) - 1
                wr_pend[i] = (a, d, mask)
            port("wr", i, "req__valid").value = int(wr_pend[i] is not None)
            if wr_pend[i] is not None:
                a, d, mask = wr_pend[i]
                port("wr", i, "req__payload").value = (
                    a | int.from_bytes(d, "little") << LA | mask << (LA + 8 * W))
        await ReadOnly()
        # responses
        for i in range(nr):
            rv = int(port("rd", i, "rvalid").value)
            due = expect[i] and expect[i][0][0] == cycle
            assert rv == bool(due), f"cycle {cycle}: rvalid[{i}]={rv}, expected {bool(due)}"
            if rv:
                got = int(port("rd", i, "rdata").value).to_bytes(W, "little")
                want = expect[i].pop(0)[1]
                assert got == want, f"cycle {cycle}: read data of master {i} differs"
        # grants
        gr = [i for i in range(nr) if rd_pend[i] is not None
              and int(port("rd", i, "req__ready").value)]
        gw = [i for i in range(nw) if wr_pend[i] is not None
              and int(port("wr", i, "req__ready").value)]
        # work conserving: a port with requests grants one in the cycle (registered grants,
        # Config.sram_arbiter_stages = s: at the latest s cycles later)
        for g in range(ngroups):
            mine = [i for i in range(nr) if groups[i] == g]
            ggr = [i for i in gr if groups[i] == g]
            assert len(ggr) <= 1, f"cycle {cycle}: read grants {ggr} on port {g}"
            idle = any(rd_pend[i] is not None for i in mine) and not ggr
            idle_r[g] = idle_r[g] + 1 if idle else 0
            assert idle_r[g] <= staged, \
                f"cycle {cycle}: read requests on port {g} but no grant ({idle_r[g]} cycles)"

        assert len(gw) <= 1, f"cycle {cycle}: write grants {gw}"
        idle = any(x is not None for x in wr_pend) and not gw
        idle_w = idle_w + 1 if idle else 0
        assert idle_w <= staged, f"cycle {cycle}: write requests but no grant ({idle_w} cycles)"

        if prio and rd_pend[0] is not None:
            assert [i for i in gr if groups[i] == groups[0]] == [0], \
                "master 0 (priority) not granted"
        if prio and wr_pend[0] is not None:
            assert gw == [0], "write master 0 (priority) not granted"
        for i in gr:
            line = rd_pend[i]
            expect[i].append((cycle + sram_read_latency(cfg), mem[line].tobytes()))
            rd_pend[i] = None
            n_reads += 1
            waited_r[i] = 0
            for j in range(nr):
                if j != i and rd_pend[j] is not None and groups[j] == groups[i]:
                    waited_r[j] += 1
                    assert prio or waited_r[j] < nr + late, f"read master {j} starved"
            if gw and wr_pend[gw[0]][0] == line:
                collisions += 1
        for i in gw:
            a, d, mask = wr_pend[i]
            for b in range(W):
                if mask >> b & 1:
                    mem[a, b] = d[b]
            wr_pend[i] = None
            n_writes += 1
            waited_w[i] = 0
            for j in range(nw):
                if j != i and wr_pend[j] is not None:
                    waited_w[j] += 1
                    assert prio or waited_w[j] < nw + late, f"write master {j} starved"
    dut._log.info(f"{cycle + 1} cycles: {n_reads} reads, {n_writes} writes, "
                  f"{collisions} same-line read+write cycles")
    assert n_reads > p["cycles"] // 2 and n_writes > p["cycles"] // 3
    if ngroups > 1:  # the ports read in parallel: more reads than cycles at this request rate
        assert n_reads > p["cycles"], n_reads

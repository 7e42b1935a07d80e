"""Metadata TX (hw/metadata_tx.py) wired to a real hw.sram.Sram, cosimulated with cocotb on
Verilator against models.metadata (tests/hw/tb_metadata_tx.py)."""

from __future__ import annotations

import json

import pytest
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import preset
from hw.csi2 import beat_layout
from hw.metadata_tx import TX_CMD_LAYOUT, MetadataTx
from hw.npu_if import sram_read_signature, sram_write_signature
from hw.sram import Sram
from sim.cocotb_run import run_cocotb


class TxBench(wiring.Component):
    """MetadataTx on read port 0 of an Sram; the bench loads the SRAM through ``wr`` and contends
    for reads through ``noise`` (read port 1, responses ignored)."""

    def __init__(self, cfg, line_bytes: int, vc: int):
        self.cfg, self.line_bytes, self.vc = cfg, line_bytes, vc
        super().__init__({
            "cmd": In(stream.Signature(TX_CMD_LAYOUT)),
            "o": Out(stream.Signature(beat_layout(cfg.csi2_lanes_bytes))),
            "wr": In(sram_write_signature(cfg)),
            "noise": In(sram_read_signature(cfg)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = MetadataTx(self.cfg, self.line_bytes, self.vc)
        m.submodules.sram = sram = Sram(self.cfg, n_read=2, n_write=1)
        wiring.connect(m, wiring.flipped(self.cmd), tx.cmd)
        wiring.connect(m, tx.o, wiring.flipped(self.o))
        wiring.connect(m, tx.rd, sram.rd[0])
        wiring.connect(m, wiring.flipped(self.noise), sram.rd[1])
        wiring.connect(m, wiring.flipped(self.wr), sram.wr[0])
        m.d.comb += self.idle.eq(tx.idle)
        return m


SMALL = preset("tiny").replace(sram_bytes=64 * 1024)

# (config, line_bytes, vc, frames, o.ready probability, noise read probability); at o.ready 1 the
# first frame carries one 5001-byte tensor (the throughput figure)
CASES = [
    pytest.param(SMALL, 37, 1, 12, 0.6, 0.3, id="tiny-line37-bp"),
    pytest.param(SMALL, 37, 1, 6, 1.0, 0.0, id="tiny-line37-fullrate"),  # same build
    pytest.param(SMALL, 1024, 0, 8, 1.0, 0.0, id="tiny-line1024-fullrate", marks=pytest.mark.full),
    pytest.param(preset("ecp5").replace(sram_bytes=64 * 1024), 64, 2, 20, 0.7, 0.3,
                 id="ecp5-line64", marks=pytest.mark.full),
    pytest.param(preset("ice40").replace(sram_bytes=64 * 1024), 23, 3, 20, 0.5, 0.5,
                 id="ice40-line23", marks=pytest.mark.full),
    pytest.param(preset("default").replace(sram_bytes=256 * 1024), 1024, 0, 20, 0.8, 0.2,
                 id="default-line1024", marks=pytest.mark.full),
    pytest.param(SMALL, 5, 0, 40, 0.9, 0.1, id="tiny-line5-long", marks=pytest.mark.full),
]


@pytest.mark.parametrize("cfg, line, vc, frames, ready, noise", CASES)
def test_metadata_tx(cfg, line, vc, frames, ready, noise):
    rundir = run_cocotb(
        TxBench(cfg, line, vc), "metadata_tx_bench", "tests.hw.tb_metadata_tx",
        {"config": cfg.to_dict(), "line_bytes": line, "vc": vc, "frames": frames,
         "ready": ready, "noise": noise, "seed": frames * 31 + line, "big": ready == 1.0})
    metrics = json.loads((rundir / "metrics.json").read_text())
    print(f"metadata_tx {cfg.name} line {line}: {metrics}")
    assert metrics["frames"] == frames

"""The one frozen configuration object of the logic die, and its named presets.

Every layer (gateware, golden models, compiler, runtime, tests) takes a :class:`Config` in its
constructor and reads structural parameters from it only. Presets are looked up by name with
:func:`preset`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from hw.errors import UserError

__all__ = ["Config", "FAST_CLOCK_MHZ", "PRESETS", "preset", "preset_names"]


#: Target clock (MHz) from which the gateware uses its deeper pipelines (:attr:`Config.fast_clock`).
FAST_CLOCK_MHZ = 60.0


@dataclass(frozen=True)
class Config:
    """Structural parameters of one logic-die instance.

    Array geometry: the systolic array has ``array_rows`` (R) rows along the reduction dimension K
    and
    ``array_cols`` (C) columns along the output-channel dimension N; it performs R*C int8 MACs per
    cycle.
    """

    name: str
    #: Systolic array rows (reduction dimension, K) and columns (output channels, N).
    array_rows: int
    array_cols: int
    #: Depthwise / vector unit lanes (channels processed per cycle).
    vector_lanes: int
    # : Total on-die SRAM in bytes (weights + activations + program), split into ``sram_banks``
    # banks.
    sram_bytes: int
    sram_banks: int
    #: Width of one SRAM bank word in bytes.
    sram_word_bytes: int
    #: CSI-2 receiver input width in bytes per clock.
    csi2_lanes_bytes: int
    #: Pixels per clock of the ISP datapath.
    isp_pixels_per_clock: int
    #: Largest sensor line the line buffers hold (pixels).
    max_line_pixels: int
    #: Target clock of the die in MHz (used for KPI ms figures and as the synthesis constraint).
    clock_mhz: float
    #: Accumulator width (TFLite int8 semantics need 32).
    acc_bits: int = 32
    #: SRAM read ports (1 or 2): with 2 every bank has a second read port that serves the vector
    #: unit alone, so the array's act gather and the vector unit's line reads do not compete when
    #: both units run (hw/sram.py ``read_groups``; the cycle model drops the port sharing).
    sram_read_ports: int = 1
    #: Window taps per vector-unit command (``hw.isa.Timing.dw_taps``); 0 derives it from the
    #: array, min(9, R*C / vector_lanes), so the vector unit never has more multipliers than the
    #: array. Fewer taps make the vector unit's line cache and byte shifters smaller (FPGA presets).
    vector_taps: int = 0
    #: Lanes of the vector unit's output pipeline (hw/vector.py POST: the MultiplyByQuantized-
    #: Multiplier stages); 0 = all ``vector_lanes``. Fewer lanes time-share it: an output vector
    #: then takes vector_lanes / vector_post_lanes cycles (the cycle model prices it).
    vector_post_lanes: int = 0
    #: Rows of the systolic array (from the last row up) whose PE products are logic
    #: (hw.systolic.logic_mul) instead of DSP blocks when synthesised: spends LUTs to save C
    #: multipliers per row on an FPGA whose DSPs the requant and the vector unit need. 0 = none.
    array_logic_rows: int = 0
    #: Lanes of the conv unit's own requant for AccMode.LAST (K split over several CONVs, rare):
    #: 0 = all array_cols lanes; fewer time-share it (hw.requant.SerialRequant), a LAST output
    #: beat then takes array_cols / last_requant_lanes cycles.
    last_requant_lanes: int = 0
    #: Pipeline stages of the vector unit's EXEC (hw/vector.py): 1 = select, multiply and
    #: accumulate in one cycle; 2 = operands selected and multiplied in a stage of their own (the
    #: tap products registered), then accumulate: one more cycle of latency per instruction
    #: (``Timing.vector_latency``), the same throughput; for FPGA clocks. 3 = also the result
    #: beat enters POST's P0 registers a cycle after the accumulate, from the accumulators and
    #: registered copies (not through the accumulate adders, nor enabled by the emit decision):
    #: one more cycle per instruction, the same throughput. 4 = also the multipliers' operands
    #: (each lane's selected x and w bytes) are registered before the products, which get a
    #: stage of their own (E1b), and the accumulate's addends (dot products, tap sums) are
    #: formed from the registered products in another (E1c), so a multiplier placed far from
    #: the unit costs latency, not the clock, and E2 adds one registered value: two more
    #: cycles per instruction, the same throughput. 5 = also the products go through a fabric
    #: register after the multiplier's own (E1c) before the addends are formed from them
    #: (E1d), so neither the route from a DSP site nor the addends' adders share a cycle with
    #: the other: three more cycles per instruction than 3, the same throughput.
    vector_exec_stages: int = 1
    #: Pipeline stages of the vector unit's command input (hw/vector.py REQ): 1 = a command's
    #: line lookup (tag compares) runs on the command as SEQ emits it; 2 = SEQ's commands go
    #: through a register and a 2-entry FIFO and the lookup starts from its registers, REQ's
    #: command metadata reaches ASM's FIFO through a write stage and its line requests reach
    #: the SRAM port through a 2-entry FIFO, and the unit's ``idle`` (its ``cmd.ready``) is a
    #: register's: five more cycles of latency per instruction
    #: (``Timing.vector_latency``), the same throughput; and ASM hands its
    #: commands to EXEC through a skid register, so ASM's ready is a register (the same latency;
    #: ASM may run one command further ahead); for FPGA clocks.
    vector_req_stages: int = 1
    #: Stages of the conv unit's act-gather walk (hw/conv_unit.py): 1 = a beat that ends a K
    #: tile's pass over the M block's rows also starts the next K tile or M block in its cycle;
    #: 2 = that happens in a turn cycle after it, from registers, so the beat's end decision only
    #: reaches the walk's current state (the K tile and M block registers and the saved start
    #: state, ~330 flip-flops, leave its fanout); one walk cycle more per K tile and M block
    #: (1 in ``m_block`` rows at most); and the act assembler in two stages (the window's
    #: slots and the piece in registers, then the shift into the beat): one cycle more of
    #: latency, the same throughput; and the act and partials gathers' line requests through
    #: 2-entry FIFOs (the partials' one cycle more of latency; the act gather's bypassed while
    #: empty, so only a request that waits for the port is queued); for FPGA clocks.
    conv_walk_stages: int = 1
    #: Stages of the conv unit's output scatter (hw/conv_unit.py ``_Scatter``): 1 = an output
    #: beat (the engine's row, with the int32 partials added in MID) is shifted to its byte
    #: offset as it is taken; 2 = it goes through a 2-entry FIFO first (data, address, byte
    #: count; the FIFO's ready a register) and is shifted in the next cycle, so the engine's
    #: output, the partials' add and the mode's selects do not reach the shifter in one cycle,
    #: nor the SRAM port's ready the engine's output handshake; and its line writes go
    #: through a 2-entry FIFO to the SRAM port (the shift's consume decision sees the FIFO's
    #: ready): two cycles more per instruction, the same throughput; for FPGA clocks.
    conv_out_stages: int = 1
    #: Cycles from an accepted SRAM read to its line on ``rdata`` (hw/npu_if.py
    #: :func:`~hw.npu_if.sram_read_latency`): 2 = the arbiters drive the banks' address pins
    #: directly; 3 = the granted read and write requests are registered before the banks (their
    #: address and data fan out to every block RAM of the SRAM, across the whole FPGA); 4 = also
    #: each bank split into sub-banks of ``hw.sram.SUB_LINES`` lines whose read data are
    #: registered before the sub-bank select (a block RAM's clock-to-output is slow). The masters
    #: are credit-based, so only their latency changes.
    sram_read_latency: int = 2
    #: Register stages of the SRAM arbiters (hw/sram.py): 0 = a master's ``ready`` is decided in
    #: the cycle from every master's ``valid`` (round robin); 1 = the grant is a register, decided
    #: from the previous cycle's requests and parked on the master that had it, so no master's
    #: request logic reaches another master's ``ready`` (on the whole FPGA die that path ran from
    #: the metadata TX through the arbiter into the vector unit). A request to a master without
    #: the grant waits one cycle; back-to-back requests of one master and alternating masters
    #: keep one grant per cycle. 2 = also every master's accepted request (valid, address,
    #: write data) is registered at its port before the arbiter's select, and the grant moves
    #: on the previous cycle's (registered) requests: no master's request logic reaches the
    #: select, the SRAM's registers or another master in the same cycle (on the whole die the
    #: path after 1 ran from the conv unit's act gather into the SRAM's address register). Reads
    #: take one cycle more (``hw.npu_if.sram_read_latency``); a request to a master without
    #: the grant may wait two cycles.
    sram_arbiter_stages: int = 0
    #: Stages of the NPU's issue queues (hw/npu.py): 1 = ``SyncFIFOBuffered``, whose head
    #: register reloads in the cycle the issue decision reads it (the decision enables the
    #: instruction-wide head); 2 = the head reloads only while empty
    #: (``hw.fifos.SlowHeadFIFO``), so its enables are a register: one queue issues at most
    #: every other cycle (the same write-to-issue latency), and a barrier (SYNC / DONE) sees
    #: the units idle a cycle late, from a register (one cycle per barrier); for FPGA clocks.
    npu_issue_stages: int = 1

    def __post_init__(self):
        for f in (
            "array_rows",
            "array_cols",
            "vector_lanes",
            "sram_bytes",
            "sram_banks",
            "sram_word_bytes",
            "csi2_lanes_bytes",
            "isp_pixels_per_clock",
            "max_line_pixels",
        ):
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"Config.{f} must be a positive int, got {v!r}")
        if self.sram_bytes % (self.sram_banks * self.sram_word_bytes):
            raise ValueError("Config.sram_bytes must be a multiple of sram_banks * sram_word_bytes")
        if self.sram_read_ports not in (1, 2):
            raise ValueError(f"Config.sram_read_ports must be 1 or 2, got {self.sram_read_ports!r}")
        if not 0 <= self.vector_taps <= 9:
            raise ValueError(f"Config.vector_taps must be in [0, 9], got {self.vector_taps!r}")
        pl = self.vector_post_lanes
        if pl and (pl < 0 or pl > self.vector_lanes or self.vector_lanes % pl or pl & (pl - 1)):
            raise ValueError("Config.vector_post_lanes must be 0 or a power of two dividing "
                             f"vector_lanes, got {pl!r}")
        if not 0 <= self.array_logic_rows <= self.array_rows:
            raise ValueError("Config.array_logic_rows must be in [0, array_rows], got "
                             f"{self.array_logic_rows!r}")
        for f, ok in (("vector_exec_stages", (1, 2, 3, 4, 5)), ("vector_req_stages", (1, 2)),
                      ("conv_walk_stages", (1, 2)), ("conv_out_stages", (1, 2)),
                      ("sram_arbiter_stages", (0, 1, 2)), ("sram_read_latency", (2, 3, 4)),
                      ("npu_issue_stages", (1, 2))):
            if getattr(self, f) not in ok:
                raise ValueError(f"Config.{f} must be {', '.join(map(str, ok[:-1]))} or "
                                 f"{ok[-1]}, got {getattr(self, f)!r}")
        lr = self.last_requant_lanes
        if lr and (lr < 0 or self.array_cols % lr):
            raise ValueError("Config.last_requant_lanes must be 0 or divide array_cols, got "
                             f"{lr!r}")
        if self.acc_bits != 32:
            raise ValueError("Config.acc_bits must be 32 (TFLite int8 semantics)")

    @property
    def fast_clock(self) -> bool:
        """True when the target clock is at least :data:`FAST_CLOCK_MHZ`: the one place that
        decides pipeline depth from the clock. Fast clocks get the deeper pipelines (an input
        register and registered products in hw/systolic.py, per-lane address registers in
        hw/gemm.py, the full 18-stage requant of hw/requant.py); slow clocks (the iCE40) the light
        ones. hw.isa.Timing derives the cycle model's latencies from the same blocks."""
        return self.clock_mhz >= FAST_CLOCK_MHZ

    @property
    def post_lanes(self) -> int:
        """Lanes of the vector unit's output pipeline (``vector_post_lanes``, 0 = all)."""
        return self.vector_post_lanes or self.vector_lanes

    @property
    def pes(self) -> int:
        """Number of processing elements (MACs per cycle) of the systolic array."""
        return self.array_rows * self.array_cols

    @property
    def sram_bank_words(self) -> int:
        return self.sram_bytes // (self.sram_banks * self.sram_word_bytes)

    def replace(self, **changes) -> Config:
        """A copy with some fields changed (the object itself is frozen)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Short stable hash of every field; build directories are keyed by it."""
        d = self.to_dict()
        # fields added after the first builds are left out at their defaults, so the digests of
        # configs that do not use them stay those from before the fields existed
        for f, default in _LATER_FIELDS.items():
            if d[f] == default:
                del d[f]
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


#: Fields added after build directories were first keyed by digests, with their defaults.
_LATER_FIELDS = {"sram_read_ports": 1, "vector_taps": 0, "vector_post_lanes": 0,
                 "array_logic_rows": 0, "last_requant_lanes": 0, "vector_exec_stages": 1,
                 "vector_req_stages": 1, "sram_read_latency": 2, "sram_arbiter_stages": 0,
                 "conv_walk_stages": 1, "conv_out_stages": 1, "npu_issue_stages": 1}

KiB = 1024
MiB = 1024 * KiB

PRESETS: dict[str, Config] = {
    # IMX500-class: 16x16 array, 8 MiB on-die SRAM (two read ports: the array and the vector
    # unit read at the same time).
    "default": Config(
        name="default",
        array_rows=16,
        array_cols=16,
        vector_lanes=16,
        sram_bytes=8 * MiB,
        sram_banks=16,
        sram_word_bytes=16,
        csi2_lanes_bytes=4,
        isp_pixels_per_clock=1,
        max_line_pixels=4096,
        clock_mhz=400.0,
        sram_read_ports=2,
    ),
    # The whole logic die (pixel path + NPU) in an ECP5-85k (LFE5U-85F: 83,640 LUT4, 156
    # MULT18X18D, 208 DP16KD) at 100 MHz (issue #13, docs/fpga.md): a 16x4 array (64 PEs, all on
    # MULT18X18D: 16 input rows fill the 16-byte line, 4 output columns keep the per-column
    # requant, psum and scatter logic small), a 16-byte SRAM line (4 banks x 4 bytes), 352 KiB of
    # SRAM (176 DP16KD), a 4-lane vector unit with 2 taps per command and one time-shared output
    # lane, and a one-lane requant for the conv unit's rare LAST mode. LUTs are what limits it
    # (routing needs room): docs/fpga.md has the per-block numbers behind each choice.
    "ecp5": Config(
        name="ecp5",
        array_rows=16,
        array_cols=4,
        vector_lanes=4,
        sram_bytes=352 * KiB,
        sram_banks=4,
        sram_word_bytes=4,
        csi2_lanes_bytes=4,
        isp_pixels_per_clock=1,
        max_line_pixels=4096,
        clock_mhz=100.0,
        vector_taps=2,
        vector_post_lanes=1,
        last_requant_lanes=1,
        vector_exec_stages=5,
        vector_req_stages=2,
        conv_walk_stages=2,
        conv_out_stages=2,
        npu_issue_stages=2,
        sram_read_latency=4,
        sram_arbiter_stages=2,
    ),
    # Fits an iCE40 UP5K (8 DSPs, 128 KiB SPRAM, 30 EBRs).
    "ice40": Config(
        name="ice40",
        array_rows=2,
        array_cols=2,
        vector_lanes=2,
        sram_bytes=128 * KiB,
        sram_banks=4,
        sram_word_bytes=2,
        csi2_lanes_bytes=1,
        isp_pixels_per_clock=1,
        max_line_pixels=640,
        clock_mhz=24.0,
    ),
    # Small and fast to simulate; large SRAM so any test model fits.
    "tiny": Config(
        name="tiny",
        array_rows=4,
        array_cols=4,
        vector_lanes=4,
        sram_bytes=1 * MiB,
        sram_banks=4,
        sram_word_bytes=4,
        csi2_lanes_bytes=4,
        isp_pixels_per_clock=1,
        max_line_pixels=4096,
        clock_mhz=100.0,
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str | Config) -> Config:
    """Return the preset called ``name`` (a Config passes through unchanged)."""
    if isinstance(name, Config):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(
            f"unknown config preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None

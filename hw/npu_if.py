"""Interfaces between the NPU's blocks: SRAM ports, unit command port, buffer write port.

This module is the contract of docs/npu.md (read it first). Every block of the NPU (hw/npu.py top,
hw/sram.py, hw/dma.py LOAD/STORE units, hw/conv_unit.py, hw/vector.py) builds its ports from these
signatures, so the blocks can be written, benched and replaced independently.

SRAM geometry: the on-die SRAM is ``config.sram_banks`` banks of ``config.sram_word_bytes``-byte
words side by side, i.e. one **line** of :func:`line_bytes` bytes per line address (bank b holds
bytes [b*word, (b+1)*word) of every line). Byte address ``a`` is line ``a // W``, byte ``a % W``.
All SRAM ports move whole lines; byte masks select the bytes written.
"""

from __future__ import annotations

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import Config
from hw.isa import INSTR_BITS

__all__ = [
    "sram_read_latency",
    "line_bytes",
    "line_addr_bits",
    "sram_read_signature",
    "sram_write_signature",
    "unit_signature",
    "unit_members",
    "buf_write_signature",
    "buf_words",
]

def sram_read_latency(config: Config) -> int:
    """Cycles from the cycle a read request is accepted (``req.valid & req.ready``) to the cycle
    its line is on ``rdata`` with ``rvalid`` high (for exactly one cycle):
    ``Config.sram_read_latency`` (2; 3 with the requests registered before the banks; 4 with
    the banks' read data registered too), plus one with ``Config.sram_arbiter_stages`` = 2 (each
    master's accepted request registered at its port).
    Responses cannot be stalled: a master must have room for every read it has in flight."""
    return config.sram_read_latency + (config.sram_arbiter_stages == 2)


def line_bytes(config: Config) -> int:
    """Bytes per SRAM line (``sram_banks * sram_word_bytes``): the width of every SRAM port."""
    return config.sram_banks * config.sram_word_bytes


def line_addr_bits(config: Config) -> int:
    """Width of a line address."""
    return max(1, (config.sram_bytes // line_bytes(config) - 1).bit_length())


def sram_read_signature(config: Config) -> wiring.Signature:
    """A read master's port (``Out`` members are driven by the master).

    ``req`` {addr: line address}; the line arrives on ``rdata`` (8*W bits, byte i at bits
    [8i, 8i+8)) with ``rvalid`` high exactly :func:`sram_read_latency` cycles after acceptance,
    in request order. A read accepted in a cycle after a write was accepted sees that write.
    """
    W = line_bytes(config)
    return wiring.Signature({
        "req": Out(stream.Signature(data.StructLayout({"addr": line_addr_bits(config)}))),
        "rdata": In(8 * W),
        "rvalid": In(1),
    })


def sram_write_signature(config: Config) -> wiring.Signature:
    """A write master's port: ``req`` {addr: line address, data: 8*W bits, mask: W byte enables}.
    A write is done (visible to later reads) once accepted."""
    W = line_bytes(config)
    return wiring.Signature({
        "req": Out(stream.Signature(data.StructLayout(
            {"addr": line_addr_bits(config), "data": 8 * W, "mask": W}))),
    })


def unit_signature() -> wiring.Signature:
    """The top's view of an execution unit (``Out`` members driven by the unit).

    - ``cmd``: the raw 256-bit instruction (``data.View(hw.isa.INSTR_LAYOUT, cmd.payload)``).
      The unit asserts ``cmd.ready`` only while idle.
    - ``idle``: high when no instruction is in flight. It must be low from the cycle after the
      ``cmd`` handshake until every SRAM write of that instruction has been accepted; the
      instruction is complete when ``idle`` is high again (the top then pushes its tokens).
    - ``stall``: high in cycles the unit has work but waits on an SRAM port (for the counters).
    - ``macs``: MACs performed this cycle (for the utilization counters; 0 for data movement).
    - ``error``: sticky; the unit met an instruction it cannot execute (the top stops and reports
      it in STATUS/ERROR). Cleared by reset.
    """
    return wiring.Signature({
        "cmd": In(stream.Signature(INSTR_BITS)),
        "idle": Out(1),
        "stall": Out(1),
        "macs": Out(16),
        "error": Out(1),
    })


def unit_members(config: Config, *, rd: bool = True, wr: bool = True,
                 buf: str | None = None) -> dict:
    """The members of an execution unit component: :func:`unit_signature`'s at top level, then
    ``rd`` (SRAM read master), ``wr`` (SRAM write master) and ``buf`` (the buffer write port:
    ``"out"`` for the LOAD unit that drives it, ``"in"`` for the conv unit owning the buffers)."""
    members = dict(unit_signature().members)
    if rd:
        members["rd"] = Out(sram_read_signature(config))
    if wr:
        members["wr"] = Out(sram_write_signature(config))
    if buf is not None:
        members["buf"] = {"in": In, "out": Out}[buf](buf_write_signature(config))
    return members


def buf_words(config: Config) -> int:
    """Words (of :func:`line_bytes` bytes) per WBUF slot; the PBUF slot is one-word aligned too."""
    from hw.isa import buffer_sizes

    W = line_bytes(config)
    return -(-buffer_sizes(config)["wbuf_slot"] // W)


def buf_write_signature(config: Config) -> wiring.Signature:
    """The LOAD unit's write port into the conv unit's local buffers (driven by the LOAD unit).

    ``req`` {buf: hw.isa.BufSel (0 WBUF, 1 PBUF), slot, addr: word index in the slot, data: 8*W
    bits, mask: W byte enables}: byte i of the word is slot byte ``addr*W + i``. LOAD of ``nbytes``
    from SRAM ``a`` writes slot bytes [0, nbytes) with SRAM bytes [a, a + nbytes) (the LOAD unit
    realigns). The conv unit may hold ``ready`` low; LOAD writes one slot while CONV reads the
    other (the tokens guarantee it), so the buffers need one write and one read port.
    """
    W = line_bytes(config)
    return wiring.Signature({
        "req": Out(stream.Signature(data.StructLayout(
            {"buf": 1, "slot": 1, "addr": max(1, (buf_words(config) - 1).bit_length()),
             "data": 8 * W, "mask": W}))),
    })

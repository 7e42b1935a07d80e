"""cocotb bench of hw.metadata_tx.MetadataTx behind a real hw.sram.Sram (the TxBench wrapper of
tests/hw/test_metadata_tx.py), against the golden model models.metadata.

The bench lays out every frame's TX table (models.metadata.tx_table), tensors (random dtypes,
ranks 0..4, odd byte counts, unaligned addresses) and image rows in SRAM through the write port,
then issues the frames' commands back to back (metadata only, image + metadata, invalid frames with
``tensors`` 0, and tables inconsistent with themselves, whose frames must stay well-formed and
leave the next frame intact) under random ``o`` back-pressure and random read contention on a
second SRAM read master. Every output burst must equal
models.metadata.frame_to_packets(pack(md), ...) byte for byte, where ``cycles_tx`` (the only field
the TX measures) is taken from the RTL's own trailer and checked against the bench's cycle count
only by bounds. The output stream's rules are checked every cycle (valid never dropped and payload
stable while stalled, non-last beats full, unused bytes of a last beat zero). Ends by checking the
TX is idle with nothing in flight and emits nothing more. Writes ``metrics.json`` (cycles, output
bytes, cycles per byte, per frame) in the run directory.
"""

from __future__ import annotations

import json
import random
import struct
import zlib

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from hw.config import Config
from hw.csi2 import DataType, beat_layout
from hw.metadata import (
    CRC_BYTES,
    DTYPE_CODES,
    HEADER_BYTES,
    TABLE_ALIGN,
    TABLE_ENTRY_BYTES,
    TABLE_ENTRY_FIELDS,
    TABLE_HEADER_BYTES,
    TABLE_HEADER_FIELDS,
    TENSOR_BYTES,
    TRAILER_BYTES,
    field_offsets,
)
from hw.metadata_tx import TX_CMD_LAYOUT
from hw.npu_if import line_addr_bits, line_bytes, sram_write_signature
from models.csi2 import EccStatus, crc16, ecc_decode
from models.metadata import Metadata, MetaTensor, frame_to_packets, pack, tx_table
from sim.cocotb_run import tb_params
from tests.hw.tb_common import TEST_TIMEOUT_MS, reset, start_clock, wait_until

DTYPES = tuple(DTYPE_CODES)
TABLE_OFFS = field_offsets(TABLE_HEADER_FIELDS)
ENTRY_OFFS = field_offsets(TABLE_ENTRY_FIELDS)
MODES = ("meta", "image", "invalid", "corrupt")


class Frame:
    """One frame's stimulus and golden expectation (cycles_tx filled from the RTL)."""

    def __init__(self, cfg: Config, rng: random.Random, nrng, mode: str, alloc, big=False):
        self.mode = mode
        self.fc = rng.getrandbits(32)
        self.flags = rng.getrandbits(16)
        self.kpi = [rng.getrandbits(32) for _ in range(3)]
        self.clock_khz = int(round(cfg.clock_mhz * 1e3))
        self.tensors, self.writes = [], []
        entries = []
        if mode != "invalid":
            nt = 1 if big else rng.choice([0, 1, 1, 2, 3, 4])
            for _ in range(max(nt, mode == "corrupt")):
                t = _random_tensor(rng, nrng, big)
                b = np.asarray(t.data).astype(t.data.dtype.newbyteorder("<")).tobytes()
                addr = alloc(len(b), rng.randint(0, 9))
                self.writes.append((addr, b))
                entries.append((addr, t))
                self.tensors.append(t)
            table = tx_table(entries)
            if mode == "corrupt":
                table = _corrupt(rng, table, len(entries))
            pb = struct.unpack_from("<I", table, TABLE_OFFS["payload_bytes"][0])[0]
            self.blob_len = (HEADER_BYTES + len(entries) * TENSOR_BYTES + pb + TRAILER_BYTES
                             + CRC_BYTES)
            self.table_addr = alloc(len(table), rng.randint(0, 40), TABLE_ALIGN)
            self.writes.append((self.table_addr, table))
        else:  # never read: any address
            self.blob_len = HEADER_BYTES + TRAILER_BYTES + CRC_BYTES
            self.table_addr = rng.randrange(0, 1 << 20) & ~(TABLE_ALIGN - 1)
        self.image = None
        self.image_addr, rows, rb = 0, 0, 0
        if mode == "image":
            rows = rng.randint(1, 6)
            rb = rng.choice([1, 3, rng.randint(1, 48), rng.randint(40, 90)])
            self.image = nrng.integers(0, 256, size=(rows, rb), dtype=np.uint8)
            self.image_addr = alloc(rows * rb, rng.randint(0, 30))
            self.writes.append((self.image_addr, self.image.tobytes()))
        self.cmd = TX_CMD_LAYOUT.const({
            "frame_counter": self.fc, "flags": self.flags, "cycles_isp": self.kpi[0],
            "cycles_npu": self.kpi[1], "cycles_total": self.kpi[2], "table_addr": self.table_addr,
            "tensors": int(mode != "invalid"), "image": int(mode == "image"),
            "image_addr": self.image_addr, "image_rows": rows, "image_row_bytes": rb,
        }).as_bits()

    def expected(self, cycles_tx: int, line: int, vc: int) -> list[bytes]:
        md = Metadata(self.fc, self.flags, self.tensors, *self.kpi, self.clock_khz, cycles_tx)
        return frame_to_packets(pack(md), self.fc, image=self.image, line_bytes=line, vc=vc)


def _corrupt(rng: random.Random, table: bytes, n: int) -> bytes:
    """A table inconsistent with itself: payload_bytes too large or too small and/or an entry's
    nbytes far beyond the payload."""
    t = bytearray(table)
    off = TABLE_OFFS["payload_bytes"][0]
    pb = struct.unpack_from("<I", t, off)[0]
    kind = rng.choice(["more", "less", "huge", "huge+less"])
    if kind == "more":
        pb += rng.randint(1, 40)
    if "less" in kind:
        pb = rng.randint(0, max(0, pb - 1))
    struct.pack_into("<I", t, off, pb)
    if "huge" in kind:
        e = TABLE_HEADER_BYTES + rng.randrange(n) * TABLE_ENTRY_BYTES + ENTRY_OFFS["nbytes"][0]
        struct.pack_into("<I", t, e, 0xFFFFFFF0)
    return bytes(t)


def _check_well_formed(i: int, f: Frame, got: list[bytes], line: int):
    """A corrupt-table frame: every packet well-formed (ECC, CRC-16, word count), the blob as long
    as its header says with a valid CRC-32, FS/FE with the frame number."""
    fn = f.fc & 0xFFFF
    for j, b in enumerate(got):
        status, h = ecc_decode(b[:4])
        assert status == EccStatus.OK, f"frame {i} burst {j}: header ECC {status}"
        dt, wc = h & 0x3F, h >> 8
        if j in (0, len(got) - 1):
            want = DataType.FS if j == 0 else DataType.FE
            assert (dt, wc, len(b)) == (want.value, fn, 4), f"frame {i} burst {j}: {b.hex()}"
        else:
            assert dt == DataType.EMBEDDED.value and len(b) == wc + 6 and 1 <= wc <= line
            assert crc16(b[4:4 + wc]) == b[4 + wc] | b[5 + wc] << 8, f"frame {i} burst {j}: CRC"
    blob, _ = _blob_of(got)
    assert len(blob) == f.blob_len, f"frame {i}: blob {len(blob)} B, header says {f.blob_len}"
    assert struct.unpack_from("<I", blob, len(blob) - 4)[0] == zlib.crc32(blob[:-4])


def _random_tensor(rng: random.Random, nrng, big=False) -> MetaTensor:
    """Random dtype, rank 0..4, at most 1500 elements (``big``: 5001 uint8 bytes)."""
    dt = np.dtype(rng.choice(DTYPES))
    rank = rng.randint(0, 4)
    shape = (1501,)
    while np.prod(shape) > 1500:
        shape = tuple(rng.choice([1, 2, 3, 5, 7, rng.randint(1, 13)]) for _ in range(rank))
    if big:
        dt, shape = np.dtype("uint8"), (3, 1667)
    if rank and rng.random() < 0.05:
        shape = shape[:-1] + (0,)  # an empty tensor: no payload bytes
    if dt.kind == "f":
        a = nrng.normal(size=shape).astype(dt)
    else:
        info = np.iinfo(dt)
        a = nrng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)
    zp = rng.randint(-(1 << 31), (1 << 31) - 1)
    return MetaTensor(a, float(np.float32(rng.uniform(0, 2))), zp)


def _blob_of(bursts: list[bytes]) -> tuple[bytes, list[tuple[int, int]]]:
    """The EMBEDDED payloads of one frame's bursts, concatenated (the RTL's blob), and each blob
    byte's (burst index, byte index in the burst)."""
    out, where = b"", []
    for k, b in enumerate(bursts):
        if len(b) >= 6 and b[0] & 0x3F == DataType.EMBEDDED.value:
            wc = b[1] | b[2] << 8
            out += b[4:4 + wc]
            where += [(k, 4 + j) for j in range(wc)]
    return out, where


class Bench:
    def __init__(self, dut, cfg: Config, p: dict):
        self.dut, self.cfg = dut, cfg
        self.rng = random.Random(p["seed"])
        self.B = cfg.csi2_lanes_bytes
        self.W = line_bytes(cfg)
        self.beat = beat_layout(self.B)
        self.wr_layout = sram_write_signature(cfg).members["req"].signature.members["payload"].shape
        self.ready_p, self.noise_p = p["ready"], p["noise"]
        self.cycle = 0
        self.cmds: list[int] = []
        self.accepts: list[int] = []  # cmd handshake cycles
        self.bursts: list[bytes] = []
        self.beats: list[list[int]] = []  # per burst: the cycle each of its beats was taken
        self.cur = b""
        self.cur_beats: list[int] = []
        self.stalled = None  # payload of a beat offered and not taken last cycle
        self.extra_ok = True

    def drive(self):
        d = self.dut
        d.o__ready.value = int(self.rng.random() < self.ready_p)
        d.noise__req__valid.value = int(self.rng.random() < self.noise_p)
        d.noise__req__payload.value = self.rng.getrandbits(line_addr_bits(self.cfg))
        d.cmd__valid.value = int(bool(self.cmds))
        if self.cmds:
            d.cmd__payload.value = self.cmds[0]

    def sample(self):
        d = self.dut
        if int(d.cmd__valid.value) and int(d.cmd__ready.value):
            self.cmds.pop(0)
            self.accepts.append(self.cycle)
        valid, ready = int(d.o__valid.value), int(d.o__ready.value)
        if self.stalled is not None:
            assert valid, f"cycle {self.cycle}: o.valid dropped while stalled"
            assert int(d.o__payload.value) == self.stalled, \
                f"cycle {self.cycle}: o.payload changed while stalled"
        self.stalled = None
        if not valid:
            return
        raw = int(d.o__payload.value)
        if not ready:
            self.stalled = raw
            return
        beat = data.Const(self.beat, raw)
        n, last = int(beat.n), int(beat.last)
        byts = bytes(int(x) for x in beat.data)
        self.cur_beats.append(self.cycle)
        if last:
            assert 1 <= n <= self.B, f"cycle {self.cycle}: last beat with n={n}"
            assert not any(byts[n:]), f"cycle {self.cycle}: unused bytes of a last beat not zero"
            self.bursts.append(self.cur + byts[:n])
            self.beats.append(self.cur_beats)
            self.cur, self.cur_beats = b"", []
        else:
            assert n == self.B, f"cycle {self.cycle}: non-last beat with n={n}"
            self.cur += byts

    async def step(self):
        await RisingEdge(self.dut.clk)
        self.cycle += 1
        self.drive()
        await ReadOnly()
        self.sample()

    def state(self) -> str:
        d = self.dut
        return (f"cycle {self.cycle}: idle={int(d.idle.value)} cmd valid/ready="
                f"{int(d.cmd__valid.value)}/{int(d.cmd__ready.value)} o valid/ready="
                f"{int(d.o__valid.value)}/{int(d.o__ready.value)}; commands left {len(self.cmds)}"
                f", accepted {len(self.accepts)}, bursts {len(self.bursts)}")

    async def load(self, mem: np.ndarray, upto: int):
        """Write SRAM bytes [0, upto) through the write port, one line per cycle."""
        d, W = self.dut, self.W
        for a in range(-(-upto // W)):
            word = int.from_bytes(mem[a * W:(a + 1) * W].tobytes(), "little")
            await RisingEdge(d.clk)
            d.wr__req__valid.value = 1
            d.wr__req__payload.value = self.wr_layout.const(
                {"addr": a, "data": word, "mask": (1 << W) - 1}).as_bits()
            await ReadOnly()
            assert int(d.wr__req__ready.value), "the only write master was not granted"
        await RisingEdge(d.clk)
        d.wr__req__valid.value = 0


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
async def metadata_tx_frames(dut):
    p = tb_params()
    cfg = Config(**p["config"])
    line, vc = p["line_bytes"], p["vc"]
    bench = Bench(dut, cfg, p)
    rng, nrng = bench.rng, np.random.default_rng(p["seed"])
    start_clock(dut)
    await reset(dut, ("cmd__valid", "cmd__payload", "o__ready", "wr__req__valid",
                      "wr__req__payload", "noise__req__valid", "noise__req__payload"))

    mem = np.zeros(cfg.sram_bytes, np.uint8)
    top = 0

    def alloc(n: int, gap: int, align: int = 1) -> int:
        nonlocal top
        a = -(-(top + gap) // align) * align
        top = a + n
        assert top <= cfg.sram_bytes, "bench data does not fit the SRAM"
        return a

    modes = list(MODES) + [rng.choice(MODES) for _ in range(p["frames"] - len(MODES))]
    rng.shuffle(modes)
    if p.get("big"):  # the big tensor goes into frame 0: a metadata-only frame
        k = modes.index("meta")
        modes[0], modes[k] = modes[k], modes[0]
    frames = [Frame(cfg, rng, nrng, mode, alloc, big=p.get("big", False) and i == 0)
              for i, mode in enumerate(modes[:p["frames"]])]
    for f in frames:
        for a, b in f.writes:
            mem[a:a + len(b)] = np.frombuffer(b, np.uint8)
    await bench.load(mem, top)
    assert int(dut.idle.value), "TX not idle after reset"

    # golden burst counts do not depend on cycles_tx: expect them with cycles_tx 0 (corrupt
    # tables: FS, the blob's packets, FE)
    counts = [2 + -(-f.blob_len // line) if f.mode == "corrupt" else len(f.expected(0, line, vc))
              for f in frames]
    want_bytes = sum(f.blob_len + 6 * c - 4 if f.mode == "corrupt" else
                     sum(len(b) for b in f.expected(0, line, vc))
                     for f, c in zip(frames, counts, strict=True))
    bench.cmds = [f.cmd for f in frames]
    bound = 500 * len(frames) + int(4 * want_bytes / max(bench.ready_p, 0.05) / (1 - bench.noise_p))
    await wait_until(dut, lambda: len(bench.bursts) >= sum(counts), bound,
                     f"{sum(counts)} bursts of {len(frames)} frames", bench.state, bench.step)
    await wait_until(dut, lambda: int(dut.idle.value), 50, "idle after the last frame",
                     bench.state, bench.step)
    for _ in range(20):  # nothing more comes out, nothing starts
        await bench.step()
        assert int(dut.idle.value) and not int(dut.o__valid.value), bench.state()
    assert len(bench.bursts) == sum(counts) and not bench.cur, "bytes after the last frame"

    k = 0
    for i, (f, c) in enumerate(zip(frames, counts, strict=True)):
        got = bench.bursts[k:k + c]
        if f.mode == "corrupt":
            _check_well_formed(i, f, got, line)
            k += c
            continue
        blob, where = _blob_of(got)
        # cycles_tx is the only field the TX measures: take it from its own trailer (every other
        # byte must equal the golden model's), and check it against the bench's cycles by bounds
        trailer = len(blob) - 4 - TRAILER_BYTES
        cycles_tx = struct.unpack_from("<I", blob, trailer)[0] if trailer >= 0 else 0
        want = f.expected(cycles_tx, line, vc)
        for j, (g, w) in enumerate(zip(got, want, strict=True)):
            if g != w:
                bad = next(x for x in range(min(len(g), len(w))) if g[x] != w[x]) \
                    if len(g) == len(w) else None
                raise AssertionError(
                    f"frame {i} ({f.mode}, {len(f.tensors)} tensors) burst {j}/{c}: "
                    f"got {len(g)} B, want {len(w)} B, first difference at byte {bad}: "
                    f"got {g[:48].hex()} want {w[:48].hex()}")
        # the trailer's first byte left the byte source (cycles_tx) no later than it reached the
        # wire, and without back-pressure at most its output pipeline latency earlier
        kb, j = where[trailer]
        on_wire = bench.beats[k + kb][j // bench.B] - bench.accepts[i]
        assert 0 < cycles_tx <= on_wire, f"frame {i}: cycles_tx {cycles_tx}, on the wire {on_wire}"
        if bench.ready_p == 1.0:
            assert on_wire - cycles_tx <= 2 * bench.B + 2, \
                f"frame {i}: cycles_tx {cycles_tx}, trailer on the wire at {on_wire}"
        k += c

    per_frame = []  # (wire bytes, tensors, cycles from its cmd handshake to its last beat)
    k = 0
    for i, c in enumerate(counts):
        per_frame.append((sum(len(b) for b in bench.bursts[k:k + c]), len(frames[i].tensors),
                          bench.beats[k + c - 1][-1] - bench.accepts[i]))
        k += c
    total = bench.beats[-1][-1] - bench.accepts[0]
    out_bytes = sum(len(b) for b in bench.bursts)
    metrics = {"frames": len(frames), "output_bytes": out_bytes, "cycles": total,
               "cycles_per_byte": round(total / out_bytes, 3), "ready": bench.ready_p,
               "noise": bench.noise_p, "modes": {m: modes.count(m) for m in MODES},
               "tensors": sum(len(f.tensors) for f in frames), "per_frame": per_frame}
    dut._log.info(f"metrics {metrics}")
    with open("metrics.json", "w") as fh:
        json.dump(metrics, fh)

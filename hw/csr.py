"""The CSR read path shared by the NPU's and the SoC's host ports: a read mux in two registered
levels (issue #13). One mux of every CSR into one register draws a 32-bit wire from each CSR to
one spot of the die (the SoC's 60:1 mux was the die's routing hot spot; the NPU's, fed by its
64-bit counters across the controller, a 12.7 ns path). Here each group of ``group_words``
consecutive words has its own mux and register, loaded in every cycle from the word addressed
(placed near its CSRs), and a small mux of the groups' registers gives the value."""

from __future__ import annotations

from amaranth import Module, Signal, Value

from hw.sram import data_reg


def grouped_read(m: Module, csrs, vals: dict, word: Value, group: Value, group_words: int,
                 name: str) -> Value:
    """The value of the CSR at word offset ``word`` (``csrs``: records with ``name`` and
    ``offset``, ``vals``: name -> value), a cycle after ``word`` is presented, selected by
    ``group`` (the group index, ``offset // group_words``, as the caller registers it). Words
    no CSR holds read 0."""
    groups: dict[int, list] = {}
    for c in csrs:
        groups.setdefault(c.offset // group_words, []).append(c)
    g_val = {}
    for g, cs in groups.items():
        # (data: the caller reads it only when ``group`` selects it, a cycle after ``word``)
        v = g_val[g] = data_reg(32, name=f"{name}_g{g}")
        with m.Switch(word % group_words):
            for c in cs:
                with m.Case(c.offset % group_words):
                    m.d.sync += v.eq(vals[c.name])
            with m.Default():
                m.d.sync += v.eq(0)
    rdata = Signal(32, name=f"{name}_rdata")
    with m.Switch(group):
        for g in groups:
            with m.Case(g):
                m.d.comb += rdata.eq(g_val[g])
    return rdata

"""Formal property sets for the stream and frame protocols (docs/formal.md).

A :class:`PropertySet` collects named properties while a formal *wrapper* (a small Amaranth module
around one block, built by ``sw/formal.py``) is elaborated, and emits them as Amaranth 0.5
``Assert`` / ``Assume`` / ``Cover`` statements. Properties are written once here and attached to a
block's ports by helpers:

* :func:`attach_stream_rules` walks a component's signature: every ``stream.Signature`` port the
  block drives (``Out``) gets the stream rules as assertions, every port the environment drives
  (``In``) gets them as assumptions (the environment obeys the rules the block relies on).
  The rules (amaranth.lib.stream, AXI-stream style): once ``valid`` is high it stays high until a
  transfer (``valid & ready``); the payload does not change while a beat is stalled.
* :func:`fifo_bounds` on any ``amaranth.lib.fifo`` FIFO (also one buried inside a block, found
  with :func:`find_fifos`): no write while full (a lost beat), no read while empty (an invented
  beat), the level never exceeds the depth.
* :func:`bounded_response`: ``done`` follows ``trigger`` within ``bound`` cycles (bounded liveness,
  a safety property a bounded model check or k-induction can decide).
* :func:`never_waits`: a condition never holds for ``bound`` consecutive cycles (no deadlock).

Every property is named ``<port or unit>.<rule>``; the wrapper decides which one is asserted in a
given solver run (``PropertySet.emit(only=...)``) so each gets its own status, depth and trace.
Assumptions (environment rules, plus any a property adds for itself) are always emitted.

Time: each wrapper owns its ``sync`` domain with reset tied low, so a trace starts from the
registers' ``init`` values and every step is one clock. ``past`` registers start at 0 and
:func:`started` is low in the first step, so no rule looks before time 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth import Module, Signal, Value
from amaranth.hdl import Assert, Assume, Cover
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Flow

__all__ = ["Prop", "PropertySet", "past", "started", "stream_rules", "attach_stream_rules",
           "stream_ports", "count", "fifo_bounds", "find_fifos", "bounded_response",
           "never_waits"]


@dataclass
class Prop:
    """One assertion: ``cond`` must hold in every step. ``assumes`` are extra environment rules
    used only when this property is checked (e.g. a fair consumer for a liveness bound)."""

    name: str
    cond: Value
    doc: str = ""
    assumes: list = field(default_factory=list)


class PropertySet:
    """Named assertions, assumptions and covers of one wrapper (module docstring)."""

    def __init__(self):
        self.props: dict[str, Prop] = {}
        self.assumes: list[Value] = []
        self.covers: dict[str, Value] = {}

    def check(self, name: str, cond, doc: str = "", assumes=()):
        if name in self.props:
            raise ValueError(f"property {name!r} defined twice")
        self.props[name] = Prop(name, Value.cast(cond), doc, list(assumes))

    def assume(self, cond):
        self.assumes.append(Value.cast(cond))

    def cover(self, name: str, cond):
        self.covers[name] = Value.cast(cond)

    def emit(self, m: Module, only: str | None = None, covers: bool = False,
             asserts: bool = True):
        """Add the statements to ``m``: every assumption, the assertion ``only`` (all when None;
        none when not ``asserts``) with its own assumptions, and the covers when ``covers``."""
        for a in self.assumes:
            m.d.comb += Assume(a)
        if only is not None and only not in self.props:
            raise KeyError(only)
        for p in self.props.values():
            if asserts and (only is None or p.name == only):
                m.d.comb += Assert(p.cond, p.name)
                for a in p.assumes:
                    m.d.comb += Assume(a)
        if covers:
            for name, c in self.covers.items():
                m.d.comb += Cover(c, name)


def started(m: Module) -> Signal:
    """Low in the first step, high after (a ``past`` value is meaningful only when high)."""
    s = getattr(m, "_props_started", None)
    if s is None:
        s = Signal(name="props_started")
        m.d.sync += s.eq(1)
        m._props_started = s
    return s


def past(m: Module, v, name: str = "past") -> Signal:
    """``v`` one step earlier (0 in the first step)."""
    v = Value.cast(v)
    r = Signal(len(v), name=name)
    m.d.sync += r.eq(v)
    return r


def count(m: Module, inc, width: int = 16, name: str = "count") -> Signal:
    """Number of steps in which ``inc`` was high, before this one (saturating)."""
    c = Signal(width, name=name)
    with m.If(inc & (c != (1 << width) - 1)):
        m.d.sync += c.eq(c + 1)
    return c


def stream_rules(ps: PropertySet, m: Module, port, name: str, *, dut_drives: bool,
                 payload: bool = True):
    """The stream rules on one ``stream.Interface``: asserted when the block drives it,
    assumed when the environment does. Properties ``<name>.valid_held`` and
    ``<name>.payload_stable``; covers ``<name>.stall`` and ``<name>.transfer``."""
    st = started(m)
    stalled = past(m, port.valid & ~port.ready, f"{name}_stalled")
    rules = {"valid_held": ~(st & stalled) | port.valid}
    if payload:
        prev = past(m, port.payload.as_value(), f"{name}_prev_payload")
        rules["payload_stable"] = ~(st & stalled) | (port.payload.as_value() == prev)
    for rule, cond in rules.items():
        if dut_drives:
            ps.check(f"{name}.{rule}", cond,
                     "valid held until ready" if rule == "valid_held"
                     else "payload stable while stalled")
        else:
            ps.assume(cond)
    if dut_drives:
        ps.cover(f"{name}.stall", st & stalled & port.valid)
        ps.cover(f"{name}.transfer", port.valid & port.ready)


def stream_ports(component: wiring.Component):
    """``[(name, interface, dut_drives)]`` for every stream port of ``component``."""
    out = []
    for name, member in component.signature.members.items():
        if not member.is_port and isinstance(member.signature, stream.Signature):
            out.append((name, getattr(component, name), member.flow == Flow.Out))
    return out


def attach_stream_rules(ps: PropertySet, m: Module, component: wiring.Component,
                        prefix: str = "", skip=()):
    """Stream rules on every stream port of ``component`` (module docstring)."""
    for name, port, dut_drives in stream_ports(component):
        if name not in skip:
            stream_rules(ps, m, port, f"{prefix}{name}", dut_drives=dut_drives)


def find_fifos(fragment, path: str = ""):
    """``[(path, fifo)]``: every ``amaranth.lib.fifo`` FIFO in an elaborated ``Fragment``
    (``Fragment.get(block, None)``), so the bounds of FIFOs inside a block can be checked
    without changing it."""
    from amaranth.lib import fifo as _fifo

    found = []
    for sub, name, _src in fragment.subfragments:
        p = f"{path}.{name}" if path else str(name)
        origin = (getattr(sub, "origins", None) or (None,))[0]
        if isinstance(origin, (_fifo.SyncFIFO, _fifo.SyncFIFOBuffered)):
            found.append((p, origin))
        else:
            found.extend(find_fifos(sub, p))
    return found


def fifo_bounds(ps: PropertySet, m: Module, f, name: str, strict_read: bool = True,
                cover_full: bool = False):
    """FIFO bounds on ``f`` (``level``, ``w_en``/``w_rdy``, ``r_en``/``r_rdy``).

    ``<name>.no_overflow``: no write strobe while full (amaranth.lib.fifo ignores it: the beat is
    lost). ``<name>.no_underflow`` (only with ``strict_read``, for consumers that take ``r_en``
    as having taken a beat): no read strobe while empty (the consumer would invent a beat). A
    consumer that strobes ``r_en`` freely and qualifies the data with ``r_rdy`` itself (legal:
    the FIFO ignores the strobe) is checked by the stream rules and beat counts downstream
    instead. Covers ``<name>.used`` and, with ``cover_full``, ``<name>.full``."""
    ps.check(f"{name}.no_overflow", ~(f.w_en & ~f.w_rdy), "no write while full (beat lost)")
    if strict_read:
        ps.check(f"{name}.no_underflow", ~(f.r_en & ~f.r_rdy),
                 "no read while empty (beat invented)")
    ps.cover(f"{name}.used", f.r_en & f.r_rdy)
    if cover_full:
        ps.cover(f"{name}.full", f.level == f.depth)


def bounded_response(ps: PropertySet, m: Module, name: str, trigger, done, bound: int,
                     doc: str = "", assumes=()):
    """Property ``name``: after ``trigger``, ``done`` is high within ``bound`` steps (a second
    trigger while waiting does not restart the wait). ``done`` in the trigger's own step
    counts."""
    bits = max(1, (bound + 1).bit_length())
    waiting = Signal(name=f"{name}_waiting".replace(".", "_"))
    age = Signal(bits, name=f"{name}_age".replace(".", "_"))
    pending = (waiting | trigger) & ~done
    with m.If(pending):
        m.d.sync += [waiting.eq(1), age.eq(age + (age != bound))]
    with m.Else():
        m.d.sync += [waiting.eq(0), age.eq(0)]
    ps.check(name, ~(waiting & (age == bound) & ~done), doc or f"responds within {bound} cycles",
             assumes)
    ps.cover(f"{name}.response", waiting & done)


def never_waits(ps: PropertySet, m: Module, name: str, cond, bound: int, doc: str = "",
                assumes=()):
    """Property ``name``: ``cond`` is never high for more than ``bound`` consecutive steps."""
    bits = max(1, (bound + 1).bit_length())
    run = Signal(bits, name=f"{name}_run".replace(".", "_"))
    with m.If(cond):
        m.d.sync += run.eq(run + (run != bound))
    with m.Else():
        m.d.sync += run.eq(0)
    ps.check(name, ~(cond & (run == bound)), doc or f"never waits more than {bound} cycles",
             assumes)

"""Layout pass: remove TRANSPOSEs by choosing where each tensor is stored transposed.

PyTorch exports keep the network NCHW and wrap every convolution in TRANSPOSE(NCHW -> NHWC) ...
TRANSPOSE(NHWC -> NCHW); the ops between the convolutions (activations, PAD, ADD, CONCATENATION)
run on NCHW tensors. This pass gives every activation tensor a *physical layout* ``L`` (the stored
tensor is ``transpose(logical, L)``) and rewrites the graph so that it computes on the stored
tensors: a TRANSPOSE whose input and output layouts make it a no-op disappears, the layout-agnostic
ops in between run on the permuted tensors (their axes, paddings and constant operands permuted).

Contract of :func:`optimize_layout` (graph -> new graph, the input graph is not modified):
- Graph inputs and outputs keep their tensors, shapes and meaning; every graph output is equal,
  element for element, to the input graph's (transposes only move bytes, the agnostic ops compute
  the same values on permuted indices). ``load_tflite`` runs it on every model.
- Layout-sensitive ops (convolutions, pools, FULLY_CONNECTED, RESHAPE, SQUEEZE, SOFTMAX, RESIZE,
  MEAN without keep_dims, ...) see their tensors in the original layout (``L`` = identity).
- Layout-agnostic ops: the unary int8 ops (RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU, HARD_SWISH,
  LOGISTIC, TANH, QUANTIZE int8 -> int8, DEQUANTIZE), ADD / MUL (operands of one rank; constant
  operands are broadcast to it and permuted), PAD (paddings permuted), CONCATENATION (axis
  permuted), MEAN with keep_dims (axes permuted). A connected set of tensors joined by agnostic ops
  (a *group*) shares one layout.
- A group's layout is chosen among the identity and the layouts that make one of its boundary
  TRANSPOSEs a no-op, minimizing the bytes the remaining TRANSPOSEs move (a few sweeps over the
  groups until nothing changes).
- A group that starts at a graph input (or at the float -> int8 QUANTIZE reading it) may take any
  layout at no cost: a TRANSPOSE is inserted right after that input (or QUANTIZE), where the
  compiler's input prologue absorbs it (the ISP writes the NPU's input tensor directly; ``logicdie
  check`` applies it on the host, "before" the NPU). A group holding an int8 graph output may take
  another layout at the cost of one TRANSPOSE (on the die) writing that output; float outputs and
  graph inputs keep theirs.
- Remaining TRANSPOSEs get the composed permutation (identity ones are removed, their readers read
  the input directly). Op indices are renumbered in execution order.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from models.graph import Graph, Op, Tensor

__all__ = ["optimize_layout", "UNARY_AGNOSTIC"]

UNARY_AGNOSTIC = ("RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC", "TANH",
                  "QUANTIZE", "DEQUANTIZE")


def _inv(p: tuple) -> tuple:
    out = [0] * len(p)
    for i, v in enumerate(p):
        out[v] = i
    return tuple(out)


def _compose(a: tuple, b: tuple) -> tuple:
    """transpose(transpose(x, a), b) == transpose(x, _compose(a, b))."""
    return tuple(a[i] for i in b)


def _ident(r: int) -> tuple:
    return tuple(range(r))


class _Layout:
    def __init__(self, g: Graph):
        self.g = g
        self.ts = g.tensors
        self.parent: dict[int, int] = {}
        self.float_inputs = {i for i in g.inputs if self.ts[i].dtype != "int8"}

    # union-find over non-constant tensors
    def find(self, t: int) -> int:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def is_var(self, i: int) -> bool:
        return i >= 0 and self.ts[i].data is None

    def perm(self, op: Op) -> tuple | None:
        t = self.ts[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
        if t is None or t.data is None:
            return None
        return tuple(int(v) for v in np.asarray(t.data).reshape(-1))

    def agnostic(self, op: Op) -> bool:
        """Whether the op computes the same values on permuted operands (see module doc)."""
        k = op.kind
        ts = self.ts
        if len(op.outputs) != 1:
            return False
        y = ts[op.outputs[0]]
        r = len(y.shape)
        var_in = [i for i in op.inputs if self.is_var(i)]
        if not var_in or any(len(ts[i].shape) != r for i in var_in):
            return False
        if any(i in self.float_inputs for i in var_in):
            return False
        if k in UNARY_AGNOSTIC:
            return True
        if k in ("ADD", "MUL"):
            return all(len(ts[i].shape) <= r for i in op.inputs if i >= 0)
        if k == "PAD":
            return not self.is_var(op.inputs[1]) and self.is_var(op.inputs[0])
        if k == "CONCATENATION":
            return all(len(ts[i].shape) == r for i in op.inputs)
        if k == "MEAN":
            return bool(op.options.get("keep_dims", False)) and not self.is_var(op.inputs[1])
        return False

    def run(self) -> Graph:
        g, ts = self.g, self.ts
        # int8 graph outputs may be stored transposed too: a TRANSPOSE (on the die) then writes
        # the output; float ones (DEQUANTIZE results) and graph inputs keep their layout
        outs = {o for o in g.outputs if ts[o].dtype == "int8" and o not in g.inputs}
        pinned: set[int] = set(self.float_inputs) | (set(g.outputs) - outs)
        # boundaries: int8 graph inputs and the outputs of a float -> int8 QUANTIZE of a graph
        # input; a layout there costs a prologue TRANSPOSE, not an NPU one
        boundary = {i for i in g.inputs if i not in self.float_inputs}
        transposes = []
        for op in g.ops:
            for i in list(op.inputs) + list(op.outputs):
                if self.is_var(i):
                    self.find(i)
            if op.kind == "TRANSPOSE" and self.perm(op) is not None and self.is_var(op.inputs[0]):
                transposes.append(op)
            elif op.kind == "QUANTIZE" and op.inputs[0] in self.float_inputs:
                boundary.add(op.outputs[0])
            elif self.agnostic(op):
                vs = [i for i in op.inputs if self.is_var(i)] + list(op.outputs)
                for v in vs[1:]:
                    self.union(vs[0], v)
            else:
                pinned.update(i for i in list(op.inputs) + list(op.outputs) if self.is_var(i))
        outs -= pinned
        pinned_roots = {self.find(i) for i in pinned}
        roots = {self.find(t) for t in list(self.parent)}
        rank = {}
        for t in self.parent:
            rank.setdefault(self.find(t), len(ts[t].shape))
        layout = {r: _ident(rank[r]) for r in roots}
        free = [r for r in sorted(roots) if r not in pinned_roots]

        adj: dict[int, list[Op]] = {}  # group -> the TRANSPOSEs reading or writing it
        for op in transposes:
            for r in {self.find(op.inputs[0]), self.find(op.outputs[0])}:
                adj.setdefault(r, []).append(op)

        def cost(root, cand) -> int:
            total = 0
            for op in adj.get(root, []):
                x, y = op.inputs[0], op.outputs[0]
                rx, ry = self.find(x), self.find(y)
                lx = cand if rx == root else layout[rx]
                ly = cand if ry == root else layout[ry]
                if _compose(_inv(lx), _compose(self.perm(op), ly)) != _ident(len(lx)):
                    total += math.prod(ts[x].shape)
            if cand != _ident(len(cand)):
                total += sum(math.prod(ts[o].shape) for o in outs if self.find(o) == root)
            return total

        for _ in range(4):
            changed = False
            for root in free:
                cands = [layout[root], _ident(rank[root])]
                for op in adj.get(root, []):
                    x, y = op.inputs[0], op.outputs[0]
                    q = self.perm(op)
                    if self.find(y) == root and len(q) == rank[root]:
                        cands.append(_compose(_inv(q), layout[self.find(x)]))
                    if self.find(x) == root and len(q) == rank[root]:
                        cands.append(_compose(q, layout[self.find(y)]))
                best = min(cands, key=lambda c: (cost(root, c), c != layout[root]))
                if best != layout[root]:
                    layout[root] = best
                    changed = True
            if not changed:
                break
        return self.rewrite({t: layout[self.find(t)] for t in self.parent}, boundary, outs)

    # ---------------------------------------------------------------- rewrite
    def rewrite(self, lay: dict, boundary: set, outs: set) -> Graph:
        g = self.g
        tensors = [copy.copy(t) for t in g.tensors]
        ident = {t: lay[t] == _ident(len(lay[t])) for t in lay}

        def new_const(data: np.ndarray, like: Tensor, suffix: str) -> int:
            t = copy.copy(like)
            t.index = len(tensors)
            t.name = f"{like.name}/{suffix}"
            t.data = np.ascontiguousarray(data).astype(like.data.dtype)
            t.shape = tuple(t.data.shape)
            tensors.append(t)
            return t.index

        def twin(t: int, perm) -> tuple[Tensor, Tensor]:
            """A copy of tensor ``t`` stored in ``t``'s group layout, and the int32 tensor of the
            permutation a TRANSPOSE between them uses."""
            src = tensors[t]
            tw = copy.copy(src)
            tw.index = len(tensors)
            tw.name = f"{src.name}/layout"
            tensors.append(tw)
            lay[tw.index], ident[tw.index] = lay[t], False
            pv = np.asarray(perm, np.int32)
            pt = Tensor(len(tensors), f"{src.name}/layout_perm", pv.shape, "int32", None, pv)
            tensors.append(pt)
            return tw, pt

        # boundary tensors keep their layout; their group readers read a transposed copy
        repl: dict[int, int] = {}
        inserted: dict[int, Op] = {}
        for b in sorted(boundary):
            if b not in lay or ident[b]:
                continue
            nb, pt = twin(b, lay[b])
            inserted[b] = Op(-1, "TRANSPOSE", [b, pt.index], [nb.index], {})
            repl[b] = nb.index
        # output boundaries: the producer writes a transposed copy, a TRANSPOSE writes the output
        out_repl: dict[int, int] = {}
        for o in sorted(outs):
            if o not in lay or ident[o]:
                continue
            no, pt = twin(o, _inv(lay[o]))
            inserted[no.index] = Op(-1, "TRANSPOSE", [no.index, pt.index], [o], {})
            repl[o] = out_repl[o] = no.index
        for t, lt in lay.items():
            if not ident[t] and t not in boundary and t not in out_repl:
                tt = tensors[t]
                tt.shape = tuple(tt.shape[i] for i in lt)
                if tt.quant is not None and tt.quant.per_channel:
                    tt.quant = copy.copy(tt.quant)
                    tt.quant.axis = _inv(lt)[tt.quant.axis]
        alias: dict[int, int] = {}
        ops: list[Op] = []
        for b in sorted(inserted):
            if b in g.inputs:
                ops.append(inserted.pop(b))

        def rd(i: int) -> int:
            while i in alias:
                i = alias[i]
            return i

        for orig in g.ops:
            op = Op(orig.index, orig.kind, list(orig.inputs), list(orig.outputs),
                    dict(orig.options))
            is_t = op.kind == "TRANSPOSE" and self.perm(orig) is not None
            ag = not is_t and self.agnostic(orig)
            if is_t or ag:
                op.inputs = [repl.get(i, i) for i in op.inputs]
            op.inputs = [rd(i) for i in op.inputs]
            op.outputs = [out_repl.get(o, o) for o in op.outputs]
            if is_t and self.is_var(orig.inputs[0]):
                x, y = op.inputs[0], op.outputs[0]
                q = self.perm(orig)
                r = len(q)
                # (the layout of the tensor the op read: a boundary's transposed copy or an
                # aliased tensor hold the same bytes as it)
                lx, ly = lay.get(orig.inputs[0], _ident(r)), lay.get(y, _ident(r))
                p = _compose(_inv(lx), _compose(q, ly))
                if p == _ident(r) and op.outputs[0] not in g.outputs:
                    alias[y] = x
                    if y in inserted:
                        tail = inserted.pop(y)
                        tail.inputs = [rd(i) for i in tail.inputs]
                        ops.append(tail)
                    continue
                if p != q:
                    pt = tensors[op.inputs[1]]
                    op.inputs[1] = new_const(np.asarray(p).reshape(pt.data.shape), pt, "perm")
            elif ag and not ident[op.outputs[0]]:
                self.remap(op, lay[op.outputs[0]], tensors, new_const)
            ops.append(op)
            for o in op.outputs:
                if o in inserted:
                    ops.append(inserted.pop(o))
        for k, op in enumerate(ops):
            op.index = k
        return Graph(g.name, tensors, ops, list(g.inputs), list(g.outputs))

    def remap(self, op: Op, lt: tuple, tensors: list, new_const) -> None:
        """Rewrite an agnostic op to compute on operands stored transposed by ``lt``."""
        r = len(lt)
        inv = _inv(lt)
        if op.kind in ("ADD", "MUL", "CONCATENATION"):
            for n, i in enumerate(op.inputs):
                t = tensors[i]
                if t.data is None:
                    continue
                d = np.asarray(t.data).reshape((1,) * (r - t.data.ndim) + t.data.shape)
                op.inputs[n] = new_const(np.transpose(d, lt), t, "layout")
            if op.kind == "CONCATENATION":
                op.options["axis"] = inv[int(op.options.get("axis", 0)) % r]
        elif op.kind == "PAD":
            pt = tensors[op.inputs[1]]
            pads = np.asarray(pt.data).reshape(r, 2)
            op.inputs[1] = new_const(pads[list(lt)].reshape(pt.data.shape), pt, "layout")
        elif op.kind == "MEAN":
            at = tensors[op.inputs[1]]
            axes = np.asarray(at.data).reshape(-1)
            new = np.asarray([inv[int(a) % r] for a in axes]).reshape(at.data.shape)
            op.inputs[1] = new_const(new, at, "layout")


def optimize_layout(graph: Graph) -> Graph:
    """The graph with its TRANSPOSEs removed where a layout choice makes them no-ops (see the
    module docstring for the contract); ``graph`` itself is unchanged."""
    if not any(op.kind == "TRANSPOSE" for op in graph.ops):
        return graph
    return _Layout(graph).run()

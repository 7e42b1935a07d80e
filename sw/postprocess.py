"""Host post-processing of anchor-based detectors (SPEC sections 6 and 7): prior boxes, box
decoding, score threshold and greedy NMS, in NumPy, as the IMX500 does on the host for models
without on-sensor post-processing.

Contracts:

* Every decoder (:class:`RetinaFaceDecoder`, :class:`SsdDecoder`) has ``priors`` (N, 4) as
  (cx, cy, w, h) normalized to the input, ``input_size`` (W, H) and
  ``decode(loc, conf, landm=None) -> list[dict]``: ``loc`` (N, 4) box offsets, ``conf`` (N, C)
  class scores (already normalized: softmax / sigmoid), ``landm`` (N, 2K) landmark offsets or
  None. Each detection is ``{"box": [x0, y0, x1, y1], "score", "landmarks": [[x, y], ...],
  "class"}`` in input-tensor pixels, sorted by descending score; scores at or below the threshold
  are dropped, then greedy NMS (:func:`nms`) keeps the highest-scoring box of each overlapping set.
* RetinaFace follows the TFLM example (../shared/models/README.md): priors for steps (8, 16, 32)
  with min sizes ((16, 32), (64, 128), (256, 512)), variances (0.1, 0.2), score > 0.85 on
  ``conf[:, 1]``, NMS at IoU 0.4.
* SSD follows the TF Object Detection API box coder: ``loc`` = (ty, tx, th, tw) with scale factors
  (10, 10, 5, 5) against anchors (:func:`ssd_anchors`), per-class NMS, class 0 = background when
  ``background`` is set.
* :func:`match_detector` recognises a known detector from a compiled model's **output structure**
  (shapes of boxes / scores / landmarks matching the priors of its input size), never from a file
  name; :func:`decode_outputs` turns a frame's graph outputs into its detections.
* :func:`prepare_model` adapts a known detector whose input convention differs from the ISP's
  (RetinaFace: NCHW, BGR, raw 0..255) to the ISP's NHWC RGB tensor: the input TRANSPOSE is removed
  (ops between input and it are re-laid-out NHWC) and the first convolutions' input channels are
  reversed. Integer results are unchanged: for the same pixels, the adapted graph's outputs equal
  the original's bit for bit (tests/sw/test_postprocess.py checks this against TFLM).
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "iou",
    "nms",
    "retinaface_priors",
    "ssd_anchors",
    "RetinaFaceDecoder",
    "SsdDecoder",
    "match_detector",
    "decode_outputs",
    "prepare_model",
    "input_layout",
]


# ------------------------------------------------------------------------------ box arithmetic
def iou(a, b) -> np.ndarray:
    """IoU of boxes ``a`` (N, 4) and ``b`` (M, 4) as (x0, y0, x1, y1) -> (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes, scores, iou_threshold: float) -> list[int]:
    """Greedy NMS: indices kept, by descending score (ties: lower index first); a box is dropped
    when its IoU with a kept box is above ``iou_threshold``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = list(np.argsort(-np.asarray(scores, np.float64), kind="stable"))
    keep: list[int] = []
    while order:
        k = order.pop(0)
        keep.append(int(k))
        if order:
            ov = iou(boxes[k], boxes[order])[0]
            order = [j for j, o in zip(order, ov, strict=True) if o <= iou_threshold]
    return keep


# ------------------------------------------------------------------------------ priors
def retinaface_priors(
    input_size: tuple[int, int],
    steps=(8, 16, 32),
    min_sizes=((16, 32), (64, 128), (256, 512)),
) -> np.ndarray:
    """RetinaFace prior boxes (N, 4) = (cx, cy, w, h) normalized, in the example's order: per
    step, per cell (row-major), per min size."""
    return _retinaface_priors(tuple(int(v) for v in input_size), tuple(steps),
                              tuple(tuple(m) for m in min_sizes)).copy()


@functools.lru_cache(maxsize=16)
def _retinaface_priors(input_size, steps, min_sizes) -> np.ndarray:
    w, h = input_size
    rows = []
    for step, sizes in zip(steps, min_sizes, strict=True):
        fh, fw = math.ceil(h / step), math.ceil(w / step)
        for i in range(fh):
            for j in range(fw):
                for s in sizes:
                    rows.append(((j + 0.5) * step / w, (i + 0.5) * step / h, s / w, s / h))
    return np.asarray(rows, np.float64)


def ssd_anchors(
    input_size: tuple[int, int],
    strides=(16, 32, 64, 128, 256, 512),
    min_scale: float = 0.2,
    max_scale: float = 0.95,
    aspect_ratios=(1.0, 2.0, 0.5),
    interpolated_scale: bool = True,
) -> np.ndarray:
    """SSD anchors (N, 4) = (cx, cy, w, h) normalized, after the TF Object Detection API's multiple
    grid anchor generator: layer k of ``len(strides)`` has scale ``min + (max - min) k / (L - 1)``
    and one anchor per aspect ratio (w = s sqrt(ar), h = s / sqrt(ar)), plus, if
    ``interpolated_scale``, one of scale sqrt(s_k s_k+1) at ratio 1; order per layer: cell
    (row-major), then anchor."""
    w, h = input_size
    n = len(strides)
    scales = [min_scale + (max_scale - min_scale) * k / max(1, n - 1) for k in range(n)] + [1.0]
    rows = []
    for k, step in enumerate(strides):
        fh, fw = math.ceil(h / step), math.ceil(w / step)
        shapes = [(scales[k] * math.sqrt(a), scales[k] / math.sqrt(a)) for a in aspect_ratios]
        if interpolated_scale:
            s = math.sqrt(scales[k] * scales[k + 1])
            shapes.append((s, s))
        for i in range(fh):
            for j in range(fw):
                for aw, ah in shapes:
                    rows.append(((j + 0.5) / fw, (i + 0.5) / fh, aw, ah))
    return np.asarray(rows, np.float64)


# ------------------------------------------------------------------------------ decoders
def _detections(boxes, scores, classes, landms, keep) -> list[dict]:
    out = []
    for k in keep:
        out.append(
            {
                "box": [float(v) for v in boxes[k]],
                "score": float(scores[k]),
                "landmarks": (
                    [[float(landms[k, 2 * p]), float(landms[k, 2 * p + 1])]
                     for p in range(landms.shape[1] // 2)]
                    if landms is not None else []
                ),
                "class": int(classes[k]),
            }
        )
    return out


@dataclass
class RetinaFaceDecoder:
    """RetinaFace decoding (module docstring); ``input_size`` = (W, H) of the input tensor."""

    input_size: tuple[int, int]
    score_threshold: float = 0.85
    nms_iou: float = 0.4
    variances: tuple[float, float] = (0.1, 0.2)
    name: str = "retinaface"
    #: the network's own input convention (README): channel order and real range of 0..255
    channel_order: str = "BGR"

    def __post_init__(self):
        self.priors = retinaface_priors(self.input_size)

    def decode_boxes(self, loc) -> np.ndarray:
        """(N, 4) offsets -> (N, 4) corner boxes in input pixels."""
        p, v = self.priors, self.variances
        loc = np.asarray(loc, np.float64).reshape(-1, 4)
        c = p[:, :2] + loc[:, :2] * v[0] * p[:, 2:]
        s = p[:, 2:] * np.exp(loc[:, 2:] * v[1])
        scale = np.array(self.input_size * 2, np.float64)
        return np.concatenate([c - s / 2, c + s / 2], axis=1) * scale

    def decode_landmarks(self, landm) -> np.ndarray:
        """(N, 2K) offsets -> (N, 2K) landmark coordinates in input pixels."""
        p, v = self.priors, self.variances
        landm = np.asarray(landm, np.float64).reshape(len(p), -1)
        k = landm.shape[1] // 2
        xy = p[:, None, :2] + landm.reshape(-1, k, 2) * v[0] * p[:, None, 2:]
        return (xy * np.array(self.input_size, np.float64)).reshape(len(p), 2 * k)

    def candidates(self, conf) -> np.ndarray:
        """Indices of priors whose face score passes the threshold."""
        conf = np.asarray(conf, np.float64).reshape(len(self.priors), -1)
        return np.flatnonzero(conf[:, 1] > self.score_threshold)

    def decode(self, loc, conf, landm=None) -> list[dict]:
        conf = np.asarray(conf, np.float64).reshape(len(self.priors), -1)
        idx = self.candidates(conf)
        boxes = self.decode_boxes(loc)[idx]
        scores = conf[idx, 1]
        landms = self.decode_landmarks(landm)[idx] if landm is not None else None
        keep = nms(boxes, scores, self.nms_iou)
        return _detections(boxes, scores, np.ones(len(idx), np.int64), landms, keep)


@dataclass
class SsdDecoder:
    """SSD decoding (module docstring) with the same interface as :class:`RetinaFaceDecoder`.
    ``anchors`` default to :func:`ssd_anchors` of the input size. ``conf`` holds per-class scores
    (N, C); with ``background`` set, column 0 is the background class and is never reported."""

    input_size: tuple[int, int]
    anchors: np.ndarray | None = None
    score_threshold: float = 0.5
    nms_iou: float = 0.6
    scale_factors: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    background: bool = True
    max_detections: int = 100
    name: str = "ssd"
    channel_order: str = "RGB"

    def __post_init__(self):
        self.priors = np.asarray(
            self.anchors if self.anchors is not None else ssd_anchors(self.input_size), np.float64)

    def decode_boxes(self, loc) -> np.ndarray:
        a = self.priors
        ty, tx, th, tw = (np.asarray(loc, np.float64).reshape(-1, 4) / self.scale_factors).T
        cx = tx * a[:, 2] + a[:, 0]
        cy = ty * a[:, 3] + a[:, 1]
        w = np.exp(tw) * a[:, 2]
        h = np.exp(th) * a[:, 3]
        scale = np.array(self.input_size * 2, np.float64)
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * scale

    def decode(self, loc, conf, landm=None) -> list[dict]:
        conf = np.asarray(conf, np.float64).reshape(len(self.priors), -1)
        boxes = self.decode_boxes(loc)
        first = 1 if self.background else 0
        picked = []
        for c in range(first, conf.shape[1]):
            idx = np.flatnonzero(conf[:, c] > self.score_threshold)
            for k in nms(boxes[idx], conf[idx, c], self.nms_iou):
                picked.append((float(conf[idx[k], c]), int(idx[k]), c))
        picked.sort(key=lambda t: (-t[0], t[1], t[2]))
        picked = picked[: self.max_detections]
        sel = [p[1] for p in picked]
        return _detections(
            boxes[sel], np.array([p[0] for p in picked]), np.array([p[2] for p in picked]),
            None, range(len(sel)))


# ------------------------------------------------------------------------------ model structure
def input_layout(shape) -> tuple[str, int, int, int]:
    """('NHWC' | 'NCHW', H, W, C) of a 4-D image input shape (C in 1, 3 decides the layout)."""
    s = tuple(int(v) for v in shape)
    if len(s) != 4:
        raise ValueError(f"not an image input: {s}")
    if s[3] in (1, 3):
        return "NHWC", s[1], s[2], s[3]
    if s[1] in (1, 3):
        return "NCHW", s[2], s[3], s[1]
    raise ValueError(f"not an image input: {s}")


def _output_roles(shapes: list[tuple], n: int) -> dict | None:
    """Indices of the boxes (n, 4), scores (n, 2) and landmarks (n, 10) outputs, or None."""
    roles: dict[str, int] = {}
    for k, s in enumerate(shapes):
        s = tuple(int(v) for v in s)
        if len(s) < 2 or s[-2] != n or int(np.prod(s[:-2], dtype=np.int64)) != 1:
            return None
        role = {4: "loc", 2: "conf", 10: "landm"}.get(s[-1])
        if role is None or role in roles:
            return None
        roles[role] = k
    return roles if "loc" in roles and "conf" in roles else None


def match_detector(graph, output_indices=None) -> tuple[object, dict] | None:
    """(decoder, roles) when the graph's outputs have the structure of a known anchor-based
    detector for its input size, else None. ``roles`` maps 'loc' / 'conf' / 'landm' to output
    positions. Recognised: RetinaFace (boxes, 2-class scores and 5 landmarks over its priors)."""
    outs = list(output_indices if output_indices is not None else graph.outputs)
    if len(graph.inputs) != 1 or len(outs) not in (2, 3):
        return None
    try:
        _, h, w, _ = input_layout(graph.tensors[graph.inputs[0]].shape)
    except ValueError:
        return None
    shapes = [graph.tensors[i].shape for i in outs]
    n = len(retinaface_priors((w, h)))
    roles = _output_roles(shapes, n)
    if roles is not None and "landm" in roles:
        return RetinaFaceDecoder((w, h)), roles
    return None


def _as_float(x, t) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind in "iu" and t.quant is not None:
        s, z = t.quant.scalar()
        return (x.astype(np.float64) - z) * s
    return x.astype(np.float64)


def decode_outputs(outputs, graph, output_indices=None, match=None) -> dict | None:
    """A frame's graph outputs -> ``{"detector", "detections", "candidates"}`` for a known detector
    (:func:`match_detector`), else None. Quantized outputs are dequantized first."""
    outs = list(output_indices if output_indices is not None else graph.outputs)
    m = match if match is not None else match_detector(graph, outs)
    if m is None:
        return None
    dec, roles = m
    vals = {r: _as_float(outputs[k], graph.tensors[outs[k]]) for r, k in roles.items()}
    conf = vals["conf"].reshape(len(dec.priors), -1)
    dets = dec.decode(vals["loc"], conf, vals.get("landm"))
    return {
        "detector": dec.name,
        "detections": dets,
        "candidates": int(np.count_nonzero(conf[:, 1 if conf.shape[1] > 1 else 0]
                                           > dec.score_threshold)),
    }


# ------------------------------------------------------------------------------ input convention
def _consumers(g, i):
    return [op for op in g.ops if i in op.inputs]


def adapt_input(graph, channel_order: str = "BGR"):
    """A copy of ``graph`` whose input is NHWC with RGB channels, for a network declared NCHW with
    ``channel_order`` channels whose input goes through QUANTIZE / PAD ops to a
    TRANSPOSE(0, 2, 3, 1). Returns None when the graph does not have that shape (or is NHWC
    already and RGB). Channel reversal is folded into the weights of the convolutions reading the
    transposed tensor (all its readers must be CONV_2D with per-tensor input quantization)."""
    g = copy.deepcopy(graph)
    if len(g.inputs) != 1:
        return None
    x = g.inputs[0]
    try:
        layout, h, w, c = input_layout(g.tensors[x].shape)
    except ValueError:
        return None
    if layout != "NCHW":
        return None
    chain, cur = [], x
    while True:
        cons = _consumers(g, cur)
        if len(cons) != 1 or cur in g.outputs:
            return None
        op = cons[0]
        if op.kind == "TRANSPOSE":
            perm = g.tensors[op.inputs[1]].data
            if perm is None or [int(v) for v in np.ravel(perm)] != [0, 2, 3, 1]:
                return None
            transpose = op
            break
        if op.kind not in ("QUANTIZE", "PAD") or op.inputs[0] != cur:
            return None
        chain.append(op)
        cur = op.outputs[0]
    nchw_to_nhwc = (0, 2, 3, 1)
    t = g.tensors[x]
    t.shape = tuple(t.shape[p] for p in nchw_to_nhwc)
    for op in chain:
        if op.kind == "PAD":
            pt = g.tensors[op.inputs[1]]
            if pt.data is None:
                return None
            pads = np.asarray(pt.data).reshape(4, 2)
            new = copy.deepcopy(pt)
            new.index = len(g.tensors)
            new.data = pads[list(nchw_to_nhwc)].astype(pt.data.dtype).reshape(pt.data.shape)
            g.tensors.append(new)
            op.inputs[1] = new.index
        o = g.tensors[op.outputs[0]]
        if o.quant is not None and o.quant.per_channel:
            return None
        o.shape = tuple(o.shape[p] for p in nchw_to_nhwc)
    src, dst = transpose.inputs[0], transpose.outputs[0]
    readers = _consumers(g, dst)
    if dst in g.outputs:
        return None
    reverse = channel_order.upper() == "BGR" and c == 3
    convs = []  # the convolutions reading the input channels (through a spatial PAD or not)
    for op in readers:
        if op.kind == "PAD" and op.inputs[0] == dst and g.tensors[op.inputs[1]].data is not None:
            if np.asarray(g.tensors[op.inputs[1]].data).reshape(-1, 2)[-1].any():
                return None  # (channel padding: the layout pass's NHWC PAD only pads H, W)
            convs += _consumers(g, op.outputs[0])
        else:
            convs.append(op)
    for op in convs:
        if reverse and (op.kind != "CONV_2D" or _consumers(g, op.inputs[1]) != [op]
                        or op.inputs[0] not in (dst, *(r.outputs[0] for r in readers))):
            return None
    for op in readers:
        op.inputs = [src if i == dst else i for i in op.inputs]
    for op in convs:
        if reverse:
            wt = g.tensors[op.inputs[1]]
            nw = copy.deepcopy(wt)
            nw.index = len(g.tensors)
            nw.data = np.ascontiguousarray(wt.data[..., ::-1])
            g.tensors.append(nw)
            op.inputs[1] = nw.index
    g.ops = [op for op in g.ops if op is not transpose]
    for k, op in enumerate(g.ops):
        op.index = k
    return g


def prepare_model(model):
    """The model the runtime should compile: for a TFLite path/bytes or Graph of a known detector
    (:func:`match_detector`) whose input is not the ISP's NHWC RGB, the adapted Graph
    (:func:`adapt_input`); anything else is returned unchanged (bundles, Compiled, other
    models)."""
    from models.graph import Graph

    graph = model if isinstance(model, Graph) else None
    if graph is None and isinstance(model, str | Path | bytes | bytearray):
        from sw.fileio import read_input

        # a FIFO, device or directory is refused here in one line (never read: it could block)
        data = read_input(model, "model") if isinstance(model, str | Path) else bytes(model)
        from sw.bundle import is_bundle

        if is_bundle(data) or data[4:8] != b"TFL3":
            return model
        from sw.tflite_import import load_tflite

        label = Path(model).name if isinstance(model, str | Path) else "model"
        try:  # (adapt_input reads the exported input chain: before the layout pass)
            graph = load_tflite(data, name=label, layout=False)
        except Exception:  # noqa: BLE001 - the runtime's own loader reports it properly
            return model
    if graph is None:
        return model
    m = match_detector(graph)
    if m is None:
        return model
    adapted = adapt_input(graph, m[0].channel_order)
    if adapted is None:
        return model
    from sw.layout import optimize_layout

    return optimize_layout(adapted)  # what load_tflite does to a model: no mid-graph TRANSPOSE

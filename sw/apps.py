"""The seed's use cases computed from the metadata alone (SPEC section 8, ``logicdie app``).

Each frame of a generated scene (sim/scene.py) goes through the whole functional pipeline
(:class:`sw.runtime.Device`: sensor -> CSI-2 -> ISP -> NPU -> metadata -> host decode); the apps
read only the decoded ``result["detections"]`` of each frame (boxes in input-tensor pixels), never
the image. The scene's ground truth is mapped into input-tensor pixels beside them.

* ``count``: :class:`Tracker` (SORT-style: constant-velocity prediction, Hungarian assignment on
  IoU with ``scipy.optimize.linear_sum_assignment``) and a vertical counting line; a confirmed
  track whose face centre changes side counts one "in" (left to right) or "out".
* ``track``: the same tracker; identities over time (tracks, ID switches against the truth).
* ``heatmap``: occupancy (box footprints) accumulated over frames, compared with the truth's.
* ``shelf``: per shelf slot, stocked iff a detection's centre lies in it; shortages = empty
  slots. The detector here is the face detector on packages with portrait labels: a real shelf
  needs a shelf-product detector (e.g. an SSD-MobileNet trained on SKU-110K) whose boxes come out
  of :class:`sw.postprocess.SsdDecoder` through the same interface.

Every app reports detection precision / recall against the truth (a detection matches a face of
IoU >= ``MATCH_IOU``; faces marked ``ignore`` are neither misses nor false alarms), the KPI
(cycles and milliseconds from the metadata), the wall-clock frame rate and the output bytes per
frame in each output mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from hw.errors import UserError
from sw.postprocess import iou

__all__ = ["APPS", "DEFAULT_SCENE", "Tracker", "Track", "run_app", "match", "bytes_per_frame"]

APPS = ("count", "heatmap", "track", "shelf")
DEFAULT_SCENE = {"count": "entrance", "track": "entrance", "heatmap": "heatmap",
                 "shelf": "shelf"}
MATCH_IOU = 0.5


# ------------------------------------------------------------------------------ tracking
@dataclass
class Track:
    id: int
    box: np.ndarray
    vel: np.ndarray = field(default_factory=lambda: np.zeros(2))
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    history: list = field(default_factory=list)  # (frame, box) of matched frames
    side: int = 0  # counting-line side of the last counted position (-1 left, +1 right)

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])

    def predicted(self) -> np.ndarray:
        return self.box + np.array([*self.vel, *self.vel])


class Tracker:
    """SORT-style multi-object tracker over boxes (module docstring).

    Each ``update(frame, boxes)``: predict every track by its velocity, assign boxes to tracks by
    ``linear_sum_assignment`` on 1 - IoU (pairs below ``iou_min`` are not assigned), update
    matched tracks (velocity: exponential average of the centre displacement), start a track for
    each unmatched box, drop tracks missed more than ``max_age`` frames. A track is confirmed after
    ``min_hits`` matches; ``update`` returns the confirmed tracks matched in this frame."""

    def __init__(self, iou_min: float = 0.1, max_age: int = 4, min_hits: int = 2,
                 smooth: float = 0.5):
        self.iou_min, self.max_age, self.min_hits, self.smooth = iou_min, max_age, min_hits, smooth
        self.tracks: list[Track] = []
        self.finished: list[Track] = []
        self._next = 1

    def update(self, frame: int, boxes) -> list[Track]:
        from scipy.optimize import linear_sum_assignment

        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        pred = np.array([t.predicted() for t in self.tracks]).reshape(-1, 4)
        pairs = []
        if len(pred) and len(boxes):
            ov = iou(pred, boxes)
            rows, cols = linear_sum_assignment(1.0 - ov)
            pairs = [(r, c) for r, c in zip(rows, cols, strict=True) if ov[r, c] >= self.iou_min]
        used_t, used_b = {r for r, _ in pairs}, {c for _, c in pairs}
        out = []
        for r, c in pairs:
            t = self.tracks[r]
            old = t.centre
            t.box = boxes[c].copy()
            t.vel = self.smooth * t.vel + (1 - self.smooth) * (t.centre - old)
            t.hits += 1
            t.misses = 0
            t.history.append((frame, t.box.copy()))
            t.confirmed = t.confirmed or t.hits >= self.min_hits
            if t.confirmed:
                out.append(t)
        keep = []
        for k, t in enumerate(self.tracks):
            if k not in used_t:
                t.misses += 1
                t.box = t.predicted()
            (keep if t.misses <= self.max_age else self.finished).append(t)
        self.tracks = keep
        for c in range(len(boxes)):
            if c not in used_b:
                t = Track(self._next, boxes[c].copy(), history=[(frame, boxes[c].copy())])
                t.confirmed = self.min_hits <= 1
                self._next += 1
                self.tracks.append(t)
                if t.confirmed:
                    out.append(t)
        return out

    def all_tracks(self) -> list[Track]:
        return self.finished + self.tracks


# ------------------------------------------------------------------------------ evaluation
def match(dets, truth, thr: float = MATCH_IOU) -> tuple[int, int, int, list]:
    """(tp, fp, fn, pairs) of one frame: detections vs truth boxes (dicts with ``box`` and
    ``ignore``) by maximum-IoU assignment at ``thr``; pairs = (detection, truth) indices."""
    from scipy.optimize import linear_sum_assignment

    db = np.array([d["box"] for d in dets], np.float64).reshape(-1, 4)
    tb = np.array([g["box"] for g in truth], np.float64).reshape(-1, 4)
    pairs = []
    if len(db) and len(tb):
        ov = iou(db, tb)
        rows, cols = linear_sum_assignment(-ov)
        pairs = [(r, c) for r, c in zip(rows, cols, strict=True) if ov[r, c] >= thr]
    md = {r for r, _ in pairs}
    mt = {c for _, c in pairs}
    tp = sum(1 for _, c in pairs if not truth[c]["ignore"])
    fp = len(db) - len(md)
    fn = sum(1 for c, g in enumerate(truth) if c not in mt and not g["ignore"])
    return tp, fp, fn, pairs


def bytes_per_frame(metadata_bytes: int, tensor_shape, sensor_mode: tuple[int, int]) -> dict:
    """CSI-2 bytes leaving the die per frame (packet headers, CRCs, FS/FE included): metadata
    only, image (the input tensor as RAW8 lines) + metadata, the RAW10 frame of the sensor mode,
    and the RAW10 frame of the full 4056 x 3040 sensor."""
    from models.csi2 import frame_packets
    from models.metadata import frame_to_packets
    from sim.sensor import SENSOR_MODES

    blob = bytes(metadata_bytes)
    md = sum(map(len, frame_to_packets(blob, 0)))
    img = sum(map(len, frame_to_packets(blob, 0, image=np.zeros(tensor_shape, np.int8))))

    def raw10(w, h):
        two = sum(map(len, frame_packets(np.zeros((2, w), np.uint16))))
        four = sum(map(len, frame_packets(np.zeros((4, w), np.uint16))))
        return two + (h - 2) * (four - two) // 2

    fw, fh = SENSOR_MODES["full"]
    return {
        "metadata": md,
        "image+metadata": img,
        "raw10": raw10(*sensor_mode),
        "raw10_full": raw10(fw, fh),
    }


# ------------------------------------------------------------------------------ the run
def _to_tensor_map(dev, scene):
    """scene pixels -> input-tensor pixels (sensor resize, then the ISP's ROI and resize)."""
    sw_, sh_ = dev.mode
    W, H = scene.size
    rx, ry, rw, rh = dev.roi
    tw, th = dev.get_input_size()
    ax = sw_ / W * tw / rw
    ay = sh_ / H * th / rh
    bx, by = -rx * tw / rw, -ry * th / rh

    def f(box):
        return [box[0] * ax + bx, box[1] * ay + by, box[2] * ax + bx, box[3] * ay + by]

    return f, (ax, bx, ay, by)


def run_app(app: str, dev, scene, plot: str | None = None, progress=None) -> dict:
    """Run ``app`` over every frame of ``scene`` on ``dev`` (a :class:`sw.runtime.Device` whose
    model is a detector); returns the JSON-ready result (module docstring)."""
    if app not in APPS:
        raise UserError(f"unknown app {app!r}; choose one of {', '.join(APPS)}")
    if app == "count" and scene.line_x is None:
        raise UserError(f"scene {scene.name!r} has no counting line; use --scene entrance")
    if app == "shelf" and not scene.slots:
        raise UserError(f"scene {scene.name!r} has no shelf slots; use --scene shelf")
    to_t, (ax, bx, _, _) = _to_tensor_map(dev, scene)
    tw, th = dev.get_input_size()
    tracker = Tracker()
    line = scene.line_x * ax + bx if scene.line_x is not None else None
    n_in = n_out = 0
    tp = fp = fn = 0
    heat = np.zeros((th, tw))
    heat_truth = np.zeros((th, tw))
    slots_t = [to_t(s) for s in scene.slots]
    slot_hits = slot_total = 0
    shortage_frames = []
    kpis, wall, valid = [], 0.0, 0
    frames_out, keep_frames = [], []
    truth_ids_to_tracks: dict[int, list[int]] = {}
    md_bytes = 0
    stride = max(1, scene.frames // 8)
    it = range(scene.frames) if progress is None else progress(range(scene.frames),
                                                               total=scene.frames)
    for t in it:
        img, truth = scene.frame(t)
        t0 = time.perf_counter()
        r = dev.capture(img)
        wall += time.perf_counter() - t0
        md_bytes = max(md_bytes, int(r.metadata_bytes))
        truth_t = [{**g, "box": to_t(g["box"])} for g in truth]
        rec = {"frame": t, "valid": bool(r.valid)}
        dets = []
        if r.valid:
            valid += 1
            kpis.append(r.kpi)
            res = r.result or {}
            if "detections" not in res:
                raise UserError("the model is not a known detector (its outputs are not boxes, "
                                "scores and landmarks over prior boxes); the apps need detections")
            dets = res["detections"]
        a, b, c, pairs = match(dets, truth_t)
        tp, fp, fn = tp + a, fp + b, fn + c
        active = tracker.update(t, [d["box"] for d in dets])
        for tr in active:
            cx = tr.centre[0]
            if line is not None:
                side = 1 if cx >= line else -1
                if tr.side == 0:
                    tr.side = side
                elif side != tr.side:
                    n_in += side > 0
                    n_out += side < 0
                    tr.side = side
        # identities: truth face -> confirmed track matched to it in this frame
        if active and truth_t:
            ov = iou([tr.box for tr in active], [g["box"] for g in truth_t])
            for k, tr in enumerate(active):
                j = int(np.argmax(ov[k]))
                if ov[k, j] >= MATCH_IOU:
                    ids = truth_ids_to_tracks.setdefault(truth_t[j]["id"], [])
                    if not ids or ids[-1] != tr.id:
                        ids.append(tr.id)
        for d in dets:
            x0, y0, x1, y1 = (int(round(v)) for v in d["box"])
            heat[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] += 1
        for g in truth_t:
            if not g["ignore"]:
                x0, y0, x1, y1 = (int(round(v)) for v in g["box"])
                heat_truth[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] += 1
        if slots_t:
            stocked = []
            for s in slots_t:
                stocked.append(any(s[0] <= (d["box"][0] + d["box"][2]) / 2 <= s[2]
                                   and s[1] <= (d["box"][1] + d["box"][3]) / 2 <= s[3]
                                   for d in dets))
            want = scene.truth_slots(t)
            slot_hits += sum(int(p == q) for p, q in zip(stocked, want, strict=True))
            slot_total += len(want)
            rec["stocked"] = stocked
            rec["truth_stocked"] = want
            shortage_frames.append([k for k, v in enumerate(stocked) if not v])
        rec["detections"] = len(dets)
        rec["truth"] = sum(1 for g in truth_t if not g["ignore"])
        rec["tracks"] = [tr.id for tr in active]
        frames_out.append(rec)
        if plot and (app == "track" or t % stride == 0 or t == scene.frames - 1):
            keep_frames.append((t, _small(img, dev, scene), dets,
                                [(tr.id, tr.box.copy()) for tr in active], rec, n_in, n_out))
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec_ = tp / (tp + fn) if tp + fn else 1.0
    out = {
        "app": app,
        "scene": scene.name,
        "frames": scene.frames,
        "valid_frames": valid,
        "precision": prec,
        "recall": rec_,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "match_iou": MATCH_IOU,
    }
    if scene.line_x is not None:
        ti, to = scene.truth_counts()
        out.update(count_in=int(n_in), count_out=int(n_out), truth_in=ti, truth_out=to,
                   count_error=abs(int(n_in) - ti) + abs(int(n_out) - to))
    tracks = [t for t in tracker.all_tracks() if t.confirmed]
    out["tracks"] = len(tracks)
    out["identities"] = len(truth_ids_to_tracks)
    out["id_switches"] = sum(len(v) - 1 for v in truth_ids_to_tracks.values())
    if app == "track":
        out["track_list"] = [
            {"id": t.id, "first": t.history[0][0], "last": t.history[-1][0],
             "path": [[f, round(float((b[0] + b[2]) / 2), 1), round(float((b[1] + b[3]) / 2), 1)]
                      for f, b in t.history]}
            for t in tracks
        ]
    a, b = heat.ravel(), heat_truth.ravel()
    out["heatmap_correlation"] = (float(np.corrcoef(a, b)[0, 1])
                                  if a.std() > 0 and b.std() > 0 else 0.0)
    if app == "heatmap":
        out["heatmap_peak"] = [int(v) for v in np.unravel_index(np.argmax(heat), heat.shape)][::-1]
    if slots_t:
        out["slots"] = len(slots_t)
        out["slot_accuracy"] = slot_hits / slot_total if slot_total else 1.0
        last = scene.truth_slots(scene.frames - 1)
        out["shortages"] = shortage_frames[-1] if shortage_frames else []
        out["truth_shortages"] = [k for k, v in enumerate(last) if not v]
        out["model_needed"] = ("a shelf-product detector (e.g. SSD-MobileNet trained on "
                               "SKU-110K) decoded by sw.postprocess.SsdDecoder; the face "
                               "detector stands in, products carry portrait labels")
    k = kpis or [{}]
    out["kpi"] = {
        key: float(np.mean([x.get(key, 0) for x in k]))
        for key in ("cycles_isp", "cycles_npu", "cycles_total", "ms_isp", "ms_npu", "ms_total")
    }
    out["kpi"]["clock_mhz"] = float(k[0].get("clock_mhz", 0.0))
    out["wall_s"] = wall
    out["fps"] = scene.frames / wall if wall else 0.0
    out["bytes_per_frame"] = bytes_per_frame(md_bytes, dev.compiled.inputs[0].shape, dev.mode)
    out["per_frame"] = frames_out
    if plot:
        out["plots"] = _plots(app, plot, keep_frames, dev, scene, heat, heat_truth, slots_t,
                              line, out)
    return out


def _small(img, dev, scene):
    """The scene frame as the input tensor sees it (ROI, resized), for pictures only."""
    from PIL import Image

    tw, th = dev.get_input_size()
    sw_, sh_ = dev.mode
    rx, ry, rw, rh = dev.roi
    W, H = scene.size
    box = (rx * W / sw_, ry * H / sh_, (rx + rw) * W / sw_, (ry + rh) * H / sh_)
    return np.asarray(Image.fromarray(img).resize((tw, th), Image.BILINEAR, box=box))


# ------------------------------------------------------------------------------ pictures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    plt = _plt()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise UserError(f"cannot write plot {path}: {e.strerror}") from None
    finally:
        plt.close(fig)


def _draw(ax, frame, line, slots_t):
    from matplotlib.patches import Rectangle

    t, img, dets, tracks, rec, n_in, n_out = frame
    ax.imshow(img)
    for d in dets:
        x0, y0, x1, y1 = d["box"]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="lime", lw=1))
        for lx, ly in d.get("landmarks") or []:
            ax.plot(lx, ly, ".", color="yellow", ms=2)
    for tid, b in tracks:
        ax.text(b[0], b[1] - 1, f"#{tid}", color="white", fontsize=7,
                bbox={"fc": "black", "alpha": 0.6, "pad": 0.5, "lw": 0})
    if line is not None:
        ax.axvline(line, color="red", lw=1, ls="--")
        ax.set_title(f"frame {t}  in {n_in}  out {n_out}", fontsize=8)
    else:
        ax.set_title(f"frame {t}: {len(dets)} detections", fontsize=8)
    if slots_t and "stocked" in rec:
        for s, ok in zip(slots_t, rec["stocked"], strict=True):
            ax.add_patch(Rectangle((s[0], s[1]), s[2] - s[0], s[3] - s[1], fill=False,
                                   ec="tab:green" if ok else "red", lw=1.5, ls=":"))
    ax.set_axis_off()


def _plots(app, path, frames, dev, scene, heat, heat_truth, slots_t, line, out) -> list[str]:
    from pathlib import Path

    plt = _plt()
    p = Path(path)
    written = []
    if app in ("count", "shelf") or (app == "track" and p.suffix.lower() != ".gif"):
        sel = frames if app != "track" else frames[:: max(1, len(frames) // 8)]
        n = len(sel)
        cols = min(4, n)
        rows = (n + cols - 1) // cols
        fig, axs = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
        for ax in axs.ravel():
            ax.set_axis_off()
        for ax, fr in zip(axs.ravel(), sel, strict=False):
            _draw(ax, fr, line, slots_t)
        fig.suptitle(_summary(app, out), fontsize=9)
        fig.tight_layout()
        _save(fig, p)
        written.append(str(p))
    elif app == "track":
        from matplotlib.animation import FuncAnimation, PillowWriter

        fig, ax = plt.subplots(figsize=(4.0, 3.2))
        trails: dict[int, list] = {}

        def step(k):
            ax.clear()
            fr = frames[k]
            _draw(ax, fr, line, slots_t)
            for tid, b in fr[3]:
                trails.setdefault(tid, []).append(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2))
            for tid, pts in trails.items():
                xy = np.array(pts)
                ax.plot(xy[:, 0], xy[:, 1], "-", lw=1, color=f"C{tid % 10}")
            return []

        anim = FuncAnimation(fig, step, frames=len(frames), blit=False)
        try:
            anim.save(str(p), writer=PillowWriter(fps=6))
        except OSError as e:
            raise UserError(f"cannot write plot {p}: {e.strerror}") from None
        finally:
            plt.close(fig)
        written.append(str(p))
    else:  # heatmap
        bg = _small(np.clip(scene.background, 0, 255).astype(np.uint8), dev, scene)
        fig, axs = plt.subplots(1, 2, figsize=(9, 3.6))
        for ax, h, title in ((axs[0], heat, "from metadata (detections)"),
                             (axs[1], heat_truth, "ground truth")):
            ax.imshow(bg)
            im = ax.imshow(np.ma.masked_where(h <= 0, h), cmap="inferno", alpha=0.6)
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
            fig.colorbar(im, ax=ax, fraction=0.035, label="frames occupied")
        fig.suptitle(_summary(app, out), fontsize=9)
        fig.tight_layout()
        _save(fig, p)
        written.append(str(p))
    bw = p.with_name(p.stem + "_bandwidth.png")
    _bandwidth_plot(out["bytes_per_frame"], bw, dev)
    written.append(str(bw))
    return written


def _summary(app, out) -> str:
    s = f"{app} on {out['scene']}: {out['frames']} frames, precision {out['precision']:.2f}, " \
        f"recall {out['recall']:.2f}"
    if "count_in" in out:
        s += f", in {out['count_in']}/{out['truth_in']}, out {out['count_out']}/{out['truth_out']}"
    if "slot_accuracy" in out:
        s += f", slot accuracy {out['slot_accuracy']:.2f}"
    if "heatmap_correlation" in out and app == "heatmap":
        s += f", correlation with truth {out['heatmap_correlation']:.2f}"
    return s


def _bandwidth_plot(b: dict, path, dev):
    plt = _plt()
    w, h = dev.mode
    labels = ["metadata only", "input image\n+ metadata", f"RAW10 {w}x{h}", "RAW10 4056x3040"]
    vals = [b["metadata"], b["image+metadata"], b["raw10"], b["raw10_full"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bars = ax.bar(labels, vals, color=["tab:green", "tab:blue", "tab:orange", "tab:red"])
    ax.set_yscale("log")
    ax.set_ylabel("bytes per frame (CSI-2 packets)")
    for r, v in zip(bars, vals, strict=True):
        ax.text(r.get_x() + r.get_width() / 2, v * 1.1, f"{v:,}", ha="center", fontsize=8)
    ax.set_title("output per frame by mode", fontsize=10)
    ax.set_ylim(top=max(vals) * 5)
    fig.tight_layout()
    _save(fig, path)

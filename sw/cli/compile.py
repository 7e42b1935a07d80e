"""``logicdie compile``: TFLite model -> bundle (SPEC section 8), with an optional per-layer
report."""

from __future__ import annotations

from pathlib import Path

from hw.config import preset
from sw.cli import add_common, real_range


def register(sub):
    p = sub.add_parser(
        "compile",
        help="compile a TFLite int8 model into an NPU bundle",
        description="Compile a TFLite int8 model for a hardware preset into one "
        "versioned, checksummed bundle (program, weights, requant tables, tensor "
        "descriptors, ISP input normalization).",
    )
    p.add_argument("model", help="TFLite int8 model (.tflite)")
    p.add_argument("-o", "--output", required=True, metavar="BUNDLE", help="bundle file to write")
    p.add_argument(
        "--config",
        default="default",
        metavar="PRESET",
        help="hardware preset (default, ecp5, ice40, tiny)",
    )
    p.add_argument(
        "--input-range",
        type=real_range,
        default=None,
        metavar="LO,HI",
        help="real range of the 8-bit pixel values for the ISP normalization "
        "(default: v - 128, i.e. [-1, 1]); write --input-range=-1,1 for a negative LO",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="print per layer: op, shapes, MACs, estimated cycles, SRAM use; and the host ops "
        "before, in the middle of and after the NPU's work",
    )
    add_common(p)
    p.set_defaults(func=run)


def report_rows(compiled, est) -> list[dict]:
    rows = []
    for layer, st in zip(compiled.layers, est["layers"], strict=True):
        rows.append(
            {
                "layer": layer.name,
                "engine": layer.engine,
                "in_shapes": layer.in_shapes,
                "out_shape": layer.out_shape,
                "macs": layer.macs,
                "cycles": st["cycles"],
                "utilization": st["utilization"],
                "const_bytes": layer.const_bytes,
                "act_bytes": layer.act_bytes,
            }
        )
    return rows


def host_ops(compiled) -> dict:
    """The graph ops the host runs: ``before`` the NPU (input prologue), ``mid``-graph (HOST
    calls: the NPU waits for the host; none for a sensor-ready model) and ``after`` it (SPEC
    section 6 tail), as op kinds in execution order."""
    g = compiled.host_graph
    return {
        "before": [g.ops[k].kind for k in compiled.host_pre],
        "mid": [g.ops[k].kind for c in compiled.host_calls for k in c["ops"]],
        "after": [g.ops[k].kind for k in compiled.host_post],
    }


def format_report(compiled, est) -> str:
    lines = [
        f"{'layer':34s} {'engine':6s} {'in':>16s} {'out':>16s} {'MACs':>11s} {'cycles':>9s} "
        f"{'util':>6s} {'weights B':>10s} {'act B':>9s}"
    ]
    for r in report_rows(compiled, est):
        ins = "x".join(map(str, r["in_shapes"][0][1:])) if r["in_shapes"] else "-"
        out = "x".join(map(str, r["out_shape"][1:])) if r["out_shape"] else "-"
        lines.append(
            f"{r['layer'][:34]:34s} {r['engine']:6s} {ins:>16s} {out:>16s} "
            f"{r['macs']:>11,} {r['cycles']:>9,} {r['utilization']:>6.1%} "
            f"{r['const_bytes']:>10,} {r['act_bytes']:>9,}"
        )
    m = compiled.memory
    lines.append(
        f"total: {compiled.macs:,} MACs, {est['cycles']:,} cycles "
        f"({est['ms']:.3f} ms at {compiled.config.clock_mhz:g} MHz), utilization "
        f"{est['utilization']:.1%} of {compiled.config.pes} PEs"
    )
    lines.append(
        f"SRAM: weights/tables {m['const_bytes']:,} + activations "
        f"{m['activation_bytes']:,} + program {m['program_bytes']:,} = "
        f"{m['total_bytes']:,} of {m['sram_bytes']:,} bytes"
    )
    h = host_ops(compiled)
    lines.append(
        "host ops: before NPU "
        + (", ".join(h["before"]) or "-")
        + "; mid-graph "
        + (", ".join(h["mid"]) or "- (none)")
        + "; after NPU "
        + (", ".join(h["after"]) or "-")
    )
    for w in compiled.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def run(args):
    from sw.bundle import save_bundle
    from sw.compiler import compile_graph, estimate
    from sw.fileio import check_output
    from sw.tflite_import import load_tflite, read_model_bytes

    config = preset(args.config)
    out = Path(args.output)
    from sw.bundle import is_bundle

    check_output(out, "bundle", inputs=[args.model], replaces=is_bundle)  # fail before any work
    data = read_model_bytes(args.model)
    graph = load_tflite(data, name=Path(args.model).name)
    compiled = compile_graph(graph, config, input_range=args.input_range)
    est = estimate(compiled)
    size = save_bundle(compiled, out, graph=graph, inputs=[args.model])
    payload = {
        "model": str(args.model),
        "bundle": str(out),
        "config": config.name,
        "bundle_bytes": size,
        "instructions": len(compiled.program),
        "macs": compiled.macs,
        "cycles": est["cycles"],
        "utilization": est["utilization"],
        "ms": est["ms"],
        "memory": compiled.memory,
        "input_norm": compiled.input_norm,
        "warnings": compiled.warnings,
        "host_ops": host_ops(compiled),
    }
    if args.report:
        payload["layers"] = report_rows(compiled, est)
    if not args.json:
        if args.report:
            print(format_report(compiled, est))
        print(
            f"wrote {out} ({size:,} bytes, {len(compiled.program)} instructions) for preset "
            f"'{config.name}': {est['cycles']:,} cycles estimated, utilization "
            f"{est['utilization']:.1%}"
        )
    return 0, payload

"""``logicdie formal``: bounded and inductive proofs of the protocol properties (docs/formal.md)."""

from __future__ import annotations

import sys

from sw.cli import add_common, positive_int


def register(sub):
    p = sub.add_parser("formal", help="prove the stream and frame protocol properties (yowasp-sby)",
                       description="Runs every property of every block (or of --only BLOCK) in "
                       "its own SymbiYosys job: bounded model check from reset to the stated "
                       "depth and k-induction. status: proven (induction closed), passed (no "
                       "counterexample within depth), failed (counterexample VCD written under "
                       "build/formal/). Exit 1 if any property failed or a tool errored.")
    p.add_argument("--only", metavar="BLOCK", default=None,
                   help="one block (csi2_rx, isp, npu, fifo, ...)")
    p.add_argument("--property", action="append", default=None, metavar="NAME",
                   help="only this property (repeatable)")
    p.add_argument("--depth", type=positive_int, default=None,
                   help="bound for every property (default: each property's own)")
    p.add_argument("--covers", action="store_true",
                   help="also check the Cover statements of each block are reachable")
    p.add_argument("--timeout", type=positive_int, default=None, help="seconds per solver run")
    add_common(p)
    p.set_defaults(func=run)


def run(args):
    from hw.errors import UserError
    from sw import formal

    if args.depth is not None and args.depth < 1:
        raise UserError("--depth must be >= 1")

    def progress(rec):
        if not args.json:
            print(formal.summary_line(rec), flush=True)
        else:
            print(formal.summary_line(rec), file=sys.stderr, flush=True)

    kw = {"timeout": args.timeout} if args.timeout else {}
    recs = formal.run_all(only=args.only, depth=args.depth, props=args.property,
                          progress=progress, **kw)
    covers = []
    if args.covers:
        for b in sorted({r["block"] for r in recs}, key=list(formal.BLOCKS).index):
            c = formal.run_covers(b, **kw)
            covers.append(c)
            line = (f"{b:<10} covers reached {c['reached']}/{c['covers']} within depth "
                    f"{c['depth']}  {c['time_s']:7.2f} s")
            print(line, file=sys.stderr if args.json else sys.stdout, flush=True)
    n = {s: sum(r["status"] == s for r in recs) for s in ("proven", "passed", "failed", "error")}
    ok = n["failed"] == 0 and n["error"] == 0 and all(c["status"] == "passed" for c in covers)
    if not args.json:
        print(f"{len(recs)} properties: {n['proven']} proven, {n['passed']} passed (bounded), "
              f"{n['failed']} failed, {n['error']} errors")
    payload = {"properties": recs, "summary": n, "ok": ok}
    if covers:
        payload["covers"] = covers
    return (0 if ok else 1), payload

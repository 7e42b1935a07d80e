"""The yosys runs :func:`sw.synth.estimate` is fitted to (generated; see docs/fpga.md,
"Estimator"): per block resources of ``sw.synth.synth(target, config, top, pnr=False)`` (blocks as
``sw.synth.parse_stat`` returns them), with the full Config of each run."""

RUNS: list[dict] = []

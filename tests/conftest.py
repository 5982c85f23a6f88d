"""Shared pytest fixtures."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Donkey Car 5.x needs numpy below 2, so it lives in its own virtual environment.
DONKEY_VENV = Path.home() / ".cache" / "autodrive-tests" / "donkey-venv"
DONKEY_REQUIREMENT = "donkeycar>=5.1,<6"


@pytest.fixture(scope="session")
def donkey_python() -> Path:
    """Python of a virtual environment with Donkey Car installed, for interoperability tests.

    Uses ``$AUTODRIVE_DONKEY_PYTHON`` when set. Otherwise it builds a venv
    once at ~/.cache/autodrive-tests/donkey-venv with ``pip install
    'donkeycar>=5.1,<6'`` and reuses it. Fails the test (never skips) when the
    venv cannot be built.
    """
    configured = os.environ.get("AUTODRIVE_DONKEY_PYTHON")
    if configured:
        return Path(configured)

    python = DONKEY_VENV / "bin" / "python"
    ready = DONKEY_VENV / ".autodrive-ready"
    DONKEY_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(DONKEY_VENV.parent / "donkey-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            steps = [
                [sys.executable, "-m", "venv", "--clear", str(DONKEY_VENV)],
                [str(python), "-m", "pip", "install", "--quiet", DONKEY_REQUIREMENT],
                [str(python), "-c", "import donkeycar.parts.tub_v2"],
            ]
            for step in steps:
                done = subprocess.run(step, capture_output=True, text=True, timeout=900)
                if done.returncode != 0:
                    pytest.fail(f"cannot build the Donkey Car venv at {DONKEY_VENV}: {' '.join(step)} "
                                f"exited {done.returncode}:\n{done.stderr[-2000:]}")
            ready.write_text(DONKEY_REQUIREMENT + "\n")
    return python

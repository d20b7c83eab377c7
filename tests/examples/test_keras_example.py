"""The tutorial's own Keras code runs on digitnet's data (Keras 3, torch backend)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "keras_tutorial.py"


def test_keras_tutorial_runs_on_a_subset(mnist):
    # Looked up, not imported: importing Keras here would install absl's logging handler on
    # pytest's captured stderr, which a later logging reset (uvicorn's, in serve's tests)
    # closes, and every test after it in the process fails.
    if importlib.util.find_spec("keras") is None:
        pytest.skip("the optional extra digitnet[keras] is not installed")
    env = dict(os.environ, KERAS_BACKEND="torch")  # Keras reads it once, at import
    # Seeded: unseeded, 3,000 images gave 84.3-90% from run to run, and the bound below is a
    # check that it learns, not a lottery.
    result = subprocess.run([sys.executable, str(EXAMPLE), "--limit", "3000", "--test-limit", "1000",
                             "--seed", "0"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "600,810" in result.stdout.replace("600810", "600,810")  # the summary's total
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", result.stdout).group(1))
    assert accuracy > 0.85

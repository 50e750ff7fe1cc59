"""Run a script of benchmarks/ inside the test process, as `python benchmarks/X.py ARGS` would.

A child interpreter spends 5-8 s of CPU importing torch, transformers and milr before the script's
first line, which the test process has already paid; on the project's 2-core machine those imports
were about a tenth of the suite. The script sees the argv, `__main__` and working directory it
would see as a child; what it changes in the process (torch's thread count, structlog's
configuration, sys.path, the environment) is put back afterwards, so the next test runs as if
nothing had happened."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import structlog
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def run_script(script: str, *args: str, drop_env: tuple[str, ...] = ("OUT",)) -> None:
    """Run benchmarks/`script` with `args` as its `__main__`; a non-zero exit fails the test."""
    path = BENCHMARKS / script
    saved_argv, saved_path, saved_cwd = sys.argv[:], sys.path[:], os.getcwd()
    saved_env, saved_threads = dict(os.environ), torch.get_num_threads()
    saved_log = structlog.get_config()
    for name in drop_env:
        os.environ.pop(name, None)
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(BENCHMARKS))  # as for a child: the script's own folder comes first
    os.chdir(ROOT)
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exit:
        assert not exit.code, f"{script} exited with {exit.code!r}"
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(saved_threads)
        structlog.configure(**saved_log)

"""milr is typed for its users (PEP 561): mypy, run on a user's snippet, sees milr's own annotations.

mypy runs in a subprocess from a temporary folder with the repository on PYTHONPATH, so milr is found
as an installed package is, and is read only because `milr/py.typed` says it is typed (without the
marker mypy reports `import-untyped` and treats every milr name as Any). `--follow-imports=silent`
checks the snippet against milr's annotations without reporting milr's internals; heavy third-party
packages (torch, transformers, LangGraph) are not analysed, which keeps a cold run to a few seconds.
The cache lives in the system temp folder, so later runs take about a second."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from milr.traces import RoundRecord

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

# What a user writes: load, call, batch, read the result and the trace, all annotated.
USER_SNIPPET = """
from pathlib import Path

import torch
from PIL import Image

import milr
from milr import MILR, MILRConfig, MILRResult, Trace
from milr.critics import Critique
from milr.shapes import ShapesOracle
from milr.traces import LoadedRound, RunSummary


def run(out: Path) -> list[float | None]:
    model: MILR = MILR.from_pretrained(
        "shapes",
        critics=[ShapesOracle()],
        config=MILRConfig(steps=1, threshold=0.8),
        dtype=torch.bfloat16,
        device="cpu",
        device_map=None,
        revision="main",
        out=out,
        max_batch=4,
        attn_implementation="eager",
    )
    result: MILRResult = model("a photo of a red circle")
    image: Image.Image = result.image
    score: float | None = result.score
    reasoning: str = result.reasoning
    folder: Path = result.trace_dir
    html: str = result._repr_html_()
    results: list[MILRResult] = model.batch(["a photo of a circle", "a photo of a square"], max_batch=2)
    trace: Trace = Trace.load(folder)
    rounds: list[LoadedRound] = trace.rounds
    critiques = [c.score for r in rounds for c in r.critiques]
    summary: RunSummary | None = trace.summary
    if summary is not None:
        stop: str = summary.stop_reason
    final: int = results[0].final_round
    config: MILRConfig = milr.MILRConfig(steps=2).override(lr=0.01)
    return [r.score for r in result.rounds] + critiques
"""

# Mistakes mypy must catch: they are only caught if milr's types are seen (not Any).
WRONG_SNIPPET = """
from milr import MILR, MILRResult, Trace


def wrong(model: MILR, result: MILRResult) -> None:
    score: int = result.score  # E: float | None is not int
    model.batch(["a cat"], max_batch="2")  # E: max_batch is an int
    rounds: str = Trace.load("run").rounds  # E: a list of rounds
"""
WRONG_LINES = {6: "assignment", 7: "arg-type", 8: "assignment"}

# Third-party packages not analysed (their names are Any): the snippet is about milr's types.
CONFIG = """
[mypy]
follow_imports = silent
[mypy-torch.*,transformers.*,langgraph.*,langchain_core.*,numpy.*,tokenizers.*,safetensors.*,huggingface_hub.*,openai.*,matplotlib.*,scipy.*,ray.*,rich.*,jinja2.*,markupsafe.*,httpx.*,structlog.*]
follow_imports = skip
"""


def _fields_snippet() -> str:
    """reveal_type of every record field through a loaded round and through the record itself."""
    fields = [f for f in RoundRecord.model_fields if f != "image"]  # `.image` is the PIL image on a LoadedRound
    body = "".join(f"    reveal_type(r.{f})\n    reveal_type(rec.{f})\n" for f in fields)
    return (
        "from milr.traces import LoadedRound, RoundRecord\n\n\ndef same(r: LoadedRound, rec: RoundRecord) -> None:\n"
        + body
    )


def _mypy(folder: Path, *files: str) -> str:
    """mypy's output on `files` in `folder`, run as a user would run it on their own code."""
    (folder / "mypy.ini").write_text(CONFIG)
    cache = Path(tempfile.gettempdir()) / "milr-mypy-cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", str(cache), "--strict",
           "--no-error-summary", "--show-error-codes", *files]  # fmt: skip
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 2: mypy itself failed
    return proc.stdout


def test_mypy_checks_a_user_snippet_against_milrs_own_types(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the dev extra: pip install -e '.[dev]'")
    (tmp_path / "user.py").write_text(textwrap.dedent(USER_SNIPPET))
    (tmp_path / "wrong.py").write_text(textwrap.dedent(WRONG_SNIPPET))
    (tmp_path / "fields.py").write_text(_fields_snippet())
    out = _mypy(tmp_path, "user.py", "wrong.py", "fields.py")
    lines = out.splitlines()
    # the user's snippet is clean under --strict: milr is found, typed, and its API annotated
    assert not [line for line in lines if line.startswith("user.py")], out
    # the mistakes are caught, each where it is made
    caught = {int(m[1]): m[2] for m in re.finditer(r"^wrong\.py:(\d+): error: .*\[([a-z-]+)\]$", out, re.M)}
    assert caught == WRONG_LINES, out
    # a loaded round has the record's fields with the record's types
    revealed = re.findall(r'^fields\.py:\d+: note: Revealed type is "(.*)"$', out, re.M)
    assert len(revealed) == 2 * (len(RoundRecord.model_fields) - 1), out
    assert revealed[0::2] == revealed[1::2], out


def test_the_typed_marker_ships_in_the_package():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in data["tool"]["setuptools"]["package-data"]["milr"]
    assert (ROOT / "milr" / "py.typed").is_file()
    assert "mypy" in " ".join(data["project"]["optional-dependencies"]["dev"])

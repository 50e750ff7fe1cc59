"""Traces: writer → reader round trip, crash safety, escaping, secrets, run ids, GenEval export."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from milr.traces import (
    CriticScore,
    RoundRecord,
    RunInfo,
    RunSummary,
    Trace,
    TraceWriter,
    export_geneval,
    new_run_id,
    write_report,
)

EVIL = "<script>alert(1)</script> \"quoted\" & 'single'"


def _image(seed: int) -> Image.Image:
    return Image.new("RGB", (16, 16), (seed * 40 % 256, 100, 200))


def _record(k: int, reasoning: str = "a red circle in row one.", score: float = 0.5) -> RoundRecord:
    return RoundRecord(
        round=k,
        modality="none" if k == 0 else "both",
        reasoning=reasoning,
        text_prefix=reasoning.split()[0],
        text_prefix_ids=[4],
        image=f"round_{k:02d}.png",
        image_prefix_ids=[7],
        score=score,
        reward=score - 1,
        critiques=[CriticScore(critic="shapes", score=score, rationale=f"round {k}")],
        seconds={"decode": 0.1, "critics": 0.01},
    )


def _write_run(path: Path, rounds: int, prompt: str = "a photo of a red circle", **kw) -> TraceWriter:
    writer = TraceWriter(path)
    writer.start(RunInfo(run_id=path.name, prompt=prompt, spec={"tag": "colors", "include": []}, **kw))
    for k in range(rounds):
        writer.write_round(_record(k, score=0.1 * (k + 1)), _image(k))
        writer.save_latents(k, {"text.z": torch.ones(2, 4) * k}, {"reasoning": "x"})
    return writer


def test_round_trip(tmp_path):
    writer = _write_run(tmp_path / "run", 3)
    writer.finish(
        RunSummary(
            stop_reason="steps", best_round=2, last_round=2, final_round=2, final_score=0.3, rounds=3, seconds=1
        ),
        _image(2),
    )
    trace = Trace.load(tmp_path / "run")
    assert [r.round for r in trace.rounds] == [0, 1, 2]
    assert trace.rounds[1].critiques[0].rationale == "round 1"
    assert trace.rounds[2].image.getpixel((0, 0)) == _image(2).getpixel((0, 0))
    assert trace.best.round == 2 and trace.summary.final_round == 2
    assert torch.equal(writer.load_latents(1)[0]["text.z"], torch.ones(2, 4))
    assert writer.load_latents(1)[1]["reasoning"] == "x"
    assert [t.run.run_id for t in Trace.scan(tmp_path)] == ["run"]


def test_a_started_run_is_never_overwritten(tmp_path):
    _write_run(tmp_path / "run", 1)
    with pytest.raises(FileExistsError, match="already holds a run"):
        TraceWriter(tmp_path / "run").start(RunInfo(run_id="run", prompt="p"))


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path):
    _write_run(tmp_path / "run", 2)
    with open(tmp_path / "run" / "rounds.jsonl", "a") as f:
        f.write(_record(2).model_dump_json()[:40])
    with pytest.warns(UserWarning, match="half-written last line"):
        trace = Trace.load(tmp_path / "run")
    assert [r.round for r in trace.rounds] == [0, 1]
    # Resuming cuts the partial line so the next append starts clean.
    TraceWriter(tmp_path / "run", resume=True).write_round(_record(2), _image(2))
    assert [r.round for r in Trace.load(tmp_path / "run").rounds] == [0, 1, 2]


def test_corrupt_middle_line_is_an_error_naming_the_line(tmp_path):
    _write_run(tmp_path / "run", 3)
    lines = (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()
    lines[0] = "{not json"
    (tmp_path / "run" / "rounds.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 1"):
        Trace.load(tmp_path / "run")


def test_missing_image_is_reported_clearly(tmp_path):
    _write_run(tmp_path / "run", 2)
    (tmp_path / "run" / "round_01.png").unlink()
    trace = Trace.load(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="round 1: image file 'round_01.png' is missing"):
        _ = trace.rounds[1].image


def test_newer_schema_is_refused_and_older_fields_are_tolerated(tmp_path):
    _write_run(tmp_path / "run", 1)
    run_json = tmp_path / "run" / "run.json"
    data = json.loads(run_json.read_text())
    data["schema_version"] = 99
    run_json.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="newer milr"):
        Trace.load(tmp_path / "run")
    data = {"run_id": "run", "prompt": "p"}  # an old, minimal run.json
    run_json.write_text(json.dumps(data))
    assert Trace.load(tmp_path / "run").run.prompt == "p"


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from PIL import Image
    from milr.traces import RunInfo, RoundRecord, TraceWriter
    w = TraceWriter(Path(sys.argv[1]))
    w.start(RunInfo(run_id="k", prompt="p"))
    k = 0
    while True:
        w.write_round(RoundRecord(round=k, image=f"round_{k:02d}.png", reasoning="x" * 2000),
                      Image.new("RGB", (64, 64), (k % 256, 0, 0)))
        print(k, flush=True)
        k += 1
        time.sleep(0.01)
    """
)


def test_sigkilled_writer_leaves_a_trace_that_loads(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "k")], stdout=subprocess.PIPE, text=True)
    for _ in range(6):
        proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    trace = Trace.load(tmp_path / "k")
    assert len(trace.rounds) >= 6
    assert [r.round for r in trace.rounds] == list(range(len(trace.rounds)))
    assert all(r.image.size == (64, 64) for r in trace.rounds)


def test_report_escapes_everything_user_or_model_written(tmp_path):
    writer = TraceWriter(tmp_path / "run")
    writer.start(RunInfo(run_id="run", prompt=EVIL, config={"threshold": 0.9}, critics=[{"name": EVIL}]))
    writer.write_round(_record(0, reasoning=EVIL), _image(0))
    writer.write_round(_record(1, reasoning=EVIL + " more"), _image(1))
    page = write_report(tmp_path / "run").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&quot;quoted&quot;" in page
    assert page.count("<img") == 3  # two rounds + the reward curve
    assert "http://" not in page and "https://" not in page


def test_no_secret_reaches_any_trace_file(tmp_path, monkeypatch):
    secret = "sk-test-SECRET-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    writer = TraceWriter(tmp_path / "run")
    writer.start(RunInfo(run_id="run", prompt=f"a cat {secret}"))
    record = _record(0, reasoning=f"leaked {secret}")
    record.critiques[0].rationale = f"the key is {secret}"
    writer.write_round(record, _image(0))
    writer.finish(
        RunSummary(stop_reason=secret, best_round=0, last_round=0, final_round=0, rounds=1, seconds=0), _image(0)
    )
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path.name


@pytest.mark.parametrize(
    ("name", "expected"), [("../x", "x"), ("a/b", "a-b"), ("ok_name-1", "ok_name-1"), ("x" * 300, "x" * 80)]
)
def test_run_ids_are_sanitised(name, expected):
    assert new_run_id("p", name) == expected


def test_unusable_run_names_are_refused():
    for bad in ("..", "/", "..///.."):
        with pytest.raises(ValueError, match="no usable characters"):
            new_run_id("p", bad)
    generated = new_run_id("A Red/Circle!")
    assert "a-red-circle" in generated and "/" not in generated


def test_geneval_export_layout(tmp_path):
    writer = _write_run(tmp_path / "runs" / "r0", 2)
    writer.finish(
        RunSummary(stop_reason="steps", best_round=1, last_round=1, final_round=1, rounds=2, seconds=0), _image(1)
    )
    out = export_geneval([tmp_path / "runs" / "r0"], tmp_path / "geneval")
    meta = json.loads((out / "00000" / "metadata.jsonl").read_text())
    assert meta["tag"] == "colors" and meta["prompt"] == "a photo of a red circle"
    assert (out / "00000" / "samples" / "0000.png").read_bytes() == (
        tmp_path / "runs" / "r0" / "final.png"
    ).read_bytes()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_in_a_real_headless_browser(tmp_path):
    writer = _write_run(tmp_path / "run", 3, prompt=EVIL)
    writer.finish(
        RunSummary(stop_reason="steps", best_round=2, last_round=2, final_round=2, rounds=3, seconds=0), _image(2)
    )
    report = write_report(tmp_path / "run")
    artefacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artefacts.mkdir(exist_ok=True)
    shot = artefacts / "report.png"
    flags = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('<section class="round"') == 3
    assert dom.stdout.count("<img") == 4  # one per round + the reward curve
    assert "<script>alert" not in dom.stdout
    assert "net::ERR" not in dom.stderr and "Failed to load" not in dom.stderr
    started = time.time()
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1100,1400", report.as_uri()],
                   capture_output=True, timeout=120)  # fmt: skip
    assert shot.is_file() and shot.stat().st_mtime >= started - 1

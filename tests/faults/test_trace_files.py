"""Hostile trace files: a crafted `rounds.jsonl` naming files outside the run folder, symbolic links
planted in a run folder, a FIFO posing as an image, damaged latents. Nothing outside the run folder
is read into a report or written by a resume, and each bad file is named, never half-used."""

from __future__ import annotations

import base64
import fcntl
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

from milr.config import MILRConfig
from milr.mug.tiny import tiny_mug
from milr.orchestrator import MILR
from milr.traces import Trace, TraceWarning, TraceWriter, export_geneval, write_report
from milr.traces.files import UnsafePathError
from milr.traces.reader import LatentsDamagedError
from tests.orchestrator.helpers import PixelCritic
from tests.traces.helpers import image, record, summary, write_run
from tests.traces.test_writer import _damage

REPO = Path(__file__).resolve().parents[2]


def _private_png(tmp_path: Path) -> tuple[Path, str]:
    """A PNG outside every run folder, and its bytes in base64 (what an embed would put in a page)."""
    secret = tmp_path / "private" / "secret.png"
    secret.parent.mkdir()
    image(6, size=24).save(secret)
    return secret, base64.b64encode(secret.read_bytes()).decode()


def _crafted_run(tmp_path: Path, bad_image: str | None = None, link_to: Path | None = None) -> Path:
    """A finished two-round run whose round 1 names `bad_image`, or whose round_01.png links to `link_to`."""
    run = tmp_path / "traces" / "run"
    writer = write_run(run, 1)
    if link_to is not None:
        os.symlink(link_to, run / "round_01.png")
        line = record(1, score=0.2).model_dump_json()
    else:
        line = record(1, score=0.2, image=bad_image).model_dump_json()  # the writer would refuse it
    with open(run / "rounds.jsonl", "a") as f:
        f.write(line + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceWarning)  # finish() writes a report too: the tests check theirs
        writer.finish(summary(2, final_round=0), image(0))
    writer.close()
    return run


CASES = ["traversal", "etc-passwd", "absolute", "symlinked image", "symlinked folder"]


def _case(tmp_path: Path, case: str) -> tuple[Path, str]:
    secret, b64 = _private_png(tmp_path)
    if case == "traversal":
        return _crafted_run(tmp_path, "../../private/secret.png"), b64
    if case == "etc-passwd":  # the issue's own case; the file may be absent on a minimal system
        passwd = Path("/etc/passwd")
        return _crafted_run(tmp_path, "../../etc/passwd"), base64.b64encode(
            passwd.read_bytes() if passwd.is_file() else b"no passwd here"
        ).decode()[:40]
    if case == "absolute":
        return _crafted_run(tmp_path, str(secret)), b64
    if case == "symlinked image":
        return _crafted_run(tmp_path, link_to=secret), b64
    run = _crafted_run(tmp_path, "shots/secret.png")
    os.symlink(secret.parent, run / "shots")  # a folder link: the file name itself looks innocent
    return run, b64


@pytest.mark.parametrize("case", CASES)
def test_a_crafted_round_never_gets_a_file_from_outside_the_run_into_a_report(tmp_path, case):
    run, secret_b64 = _case(tmp_path, case)
    trace = Trace.load(run)
    with pytest.raises(UnsafePathError, match="round 1 image"):
        _ = trace.rounds[1].image
    with pytest.warns(TraceWarning, match="round 1 image .* refused|symbolic link"):
        page = write_report(trace).read_text()
    assert secret_b64 not in page
    assert "refused: not a plain file in the run folder" in page
    assert page.count("data:image/png;base64,") == 1  # round 0 is still shown
    with pytest.raises(UnsafePathError):
        export_geneval([trace], tmp_path / "export", which="last")
    assert not list((tmp_path / "export").rglob("*.png"))


def test_a_non_png_named_as_an_image_is_refused_not_embedded(tmp_path):
    run = _crafted_run(tmp_path, "run.json")  # inside the folder, but not an image
    with pytest.warns(TraceWarning, match="not a PNG file"):
        page = write_report(run).read_text()
    assert "refused: not a PNG file" in page
    assert base64.b64encode((run / "run.json").read_bytes()).decode()[:40] not in page


def test_a_fifo_posing_as_an_image_does_not_hang_the_report(tmp_path):
    run = tmp_path / "run"
    write_run(run, 2).close()
    (run / "round_01.png").unlink()
    os.mkfifo(run / "round_01.png")  # opening it for reading would wait for a writer forever
    pages: list[str] = []
    worker = threading.Thread(target=lambda: pages.append(write_report(run).read_text()), daemon=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceWarning)
        worker.start()
        worker.join(20)
    assert not worker.is_alive(), "the report hung on a FIFO"
    assert "round_01.png refused" in pages[0]


def test_the_cli_report_of_a_crafted_trace_embeds_nothing_from_outside(tmp_path):
    run, secret_b64 = _case(tmp_path, "symlinked image")
    proc = subprocess.run(
        [sys.executable, "-m", "milr.cli", "traces", "report", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (run / "report.html").read_text()
    assert secret_b64 not in page and "refused" in page


# ----------------------------------------------------------------------------- the write side: resume
def _unfinished(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    write_run(run, 2).close()
    return run


@pytest.mark.parametrize("planted", ["rounds.jsonl", "latents", "latents/round_01.safetensors"])
def test_resume_refuses_a_symlink_in_the_run_folder_and_writes_nothing_outside(tmp_path, planted):
    run = _unfinished(tmp_path)
    outside = tmp_path / "outside"
    os.replace(run / planted, outside)  # the real file (or folder) now lies outside, behind a link
    os.symlink(outside, run / planted)
    before = _files_outside(tmp_path, run)
    with pytest.raises(UnsafePathError, match=f"'{planted}' is a symbolic link") as err:
        TraceWriter(run, resume=True)
    assert isinstance(err.value, ValueError)
    assert _files_outside(tmp_path, run) == before
    assert _lock_is_free(run)  # the refused writer let go of the folder


def _files_outside(root: Path, run: Path) -> dict[str, bytes]:
    """Every file under `root` but those of `run`, with its bytes (links are not followed)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) != run]
        found |= {
            os.path.join(folder, f): Path(folder, f).read_bytes() for f in files if not Path(folder, f).is_symlink()
        }
    return found


def _lock_is_free(run: Path) -> bool:
    fd = os.open(run / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_the_reader_refuses_a_symlinked_rounds_file(tmp_path):
    run = _unfinished(tmp_path)
    os.replace(run / "rounds.jsonl", tmp_path / "elsewhere.jsonl")
    os.symlink(tmp_path / "elsewhere.jsonl", run / "rounds.jsonl")
    with pytest.raises(UnsafePathError, match="rounds.jsonl"):
        Trace.load(run)
    infos = Trace.scan(tmp_path)
    assert [i.error for i in infos if i.path.name == "run"][0].count("symbolic link") == 1


def test_resume_through_the_graph_refuses_a_symlinked_latents_folder(tmp_path):
    mug = tiny_mug(seed=0)
    config = MILRConfig(steps=3, seed=1, max_reasoning_tokens=8)
    run_dir = _stopped_run(mug, config, tmp_path)
    outside = tmp_path / "outside"
    os.replace(run_dir / "latents", outside)
    os.symlink(outside, run_dir / "latents")
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(ValueError, match="latents folder 'latents' is a symbolic link"):
        MILR(mug, PixelCritic(), config, out=tmp_path / "out").batch(["a photo of a cat"], names=["r"], resume=True)
    assert sorted(p.name for p in outside.iterdir()) == before
    assert [r.round for r in Trace.load(run_dir).rounds] == [0, 1]


# ----------------------------------------------------------------------------- damaged latents
class _StopAt(PixelCritic):
    """Scores like PixelCritic, then fails on call `n`: the run stops with rounds 0..n-2 on disk."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self, image, prompt, spec=None):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt  # not caught by the mixer or the critique node: the run stops here
        return super().__call__(image, prompt, spec)


def _stopped_run(mug, config: MILRConfig, tmp_path: Path) -> Path:
    with pytest.raises(KeyboardInterrupt):
        MILR(mug, _StopAt(3), config, out=tmp_path / "out").batch(["a photo of a cat"], names=["r"])
    run_dir = tmp_path / "out" / "r"
    assert [r.round for r in Trace.load(run_dir).rounds] == [0, 1]
    return run_dir


@pytest.mark.parametrize("how", ["truncated", "random", "bit-flipped"])
def test_resume_from_damaged_latents_names_the_round_and_the_file(tmp_path, how):
    mug = tiny_mug(seed=0)
    config = MILRConfig(steps=3, seed=1, max_reasoning_tokens=8)
    run_dir = _stopped_run(mug, config, tmp_path)
    _damage(run_dir / "latents" / "round_01.safetensors", how)
    milr = MILR(mug, PixelCritic(), config, out=tmp_path / "out")
    with pytest.raises(LatentsDamagedError) as err:
        milr.batch(["a photo of a cat"], names=["r"], resume=True)
    message = str(err.value)
    assert "latents of round 1 do not match their checksum: the file was changed or damaged" in message
    assert "latents/round_01.safetensors" in message
    assert [r.round for r in Trace.load(run_dir).rounds] == [0, 1]  # nothing half-used, nothing added
    assert _lock_is_free(run_dir)  # and the failed resume let go of the folder

"""`rescore`: round images of finished runs scored by other critics without regenerating. The
originals stay byte for byte, the verdicts equal scoring the PNGs directly, a rescore resumes, and
the CLI does the same."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from milr.bench.datasets import load_shapes
from milr.bench.runner import BenchSpec, run_bench
from milr.cli import build_parser
from milr.config import MILRConfig
from milr.critics.base import Critique, PromptSpec
from milr.shapes.lab import lab_critic
from milr.shapes.oracle import ShapesOracle
from milr.studies.rescore import read_rescore, rescore, rescore_file_name, round_verdicts, run_folders
from milr.traces import Trace


@pytest.fixture(scope="module")
def bench_folder(tmp_path_factory, shapes_mug):
    """A finished MILR sweep: 6 ShapesEval prompts (one per tag), K = 2, rewarded and judged by the oracle."""
    out = tmp_path_factory.mktemp("rescore") / "milr"
    items = load_shapes(per_tag=2)[::2]
    config = MILRConfig(steps=2).with_recommended(shapes_mug.recommended)
    oracle = ShapesOracle()
    run_bench(items, shapes_mug, BenchSpec("milr", config), oracle, oracle, out, progress=False, batch=6)
    return out


@pytest.fixture
def folder(bench_folder, tmp_path):
    copy = tmp_path / "milr"
    shutil.copytree(bench_folder, copy)
    return copy


def hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def test_rescore_leaves_originals_byte_for_byte_and_equals_scoring_the_pngs(folder):
    before = hashes(folder)
    results = rescore(folder, "shapes-countblind,shapes-noisy:flip=0.5")
    after = hashes(folder)
    assert {k: after[k] for k in before} == before  # every original file still there, unchanged
    new = sorted(set(after) - set(before))
    assert new and all(Path(k).parent.name == "rescore" for k in new)
    runs = run_folders([folder])
    rounds = sum(len(Trace.load(r).rounds) for r in runs)
    assert [r.critic for r in results] == ["shapes-countblind", "shapes-noisy:flip=0.5"]
    assert all(r.scored == rounds and r.reused == 0 and r.runs == 6 for r in results)
    direct = {"shapes-countblind": lab_critic("countblind"), "shapes-noisy:flip=0.5": lab_critic("noisy", flip=0.5)}
    flipped = 0
    for run_dir in runs:
        trace = Trace.load(run_dir)
        spec = PromptSpec.from_geneval(trace.run.spec)
        for name, critic in direct.items():
            lines = read_rescore(run_dir, name)
            assert len(lines) == len(trace.rounds)
            for r in trace.rounds:
                png = (run_dir / r.image_file).read_bytes()
                line = lines[(r.round, hashlib.sha256(png).hexdigest())]
                with Image.open(run_dir / r.image_file) as img:
                    expected = critic(img.convert("RGB"), trace.run.prompt, spec)
                assert (line["score"], line["details"], line["correct"]) == (
                    expected.score, expected.details, expected.details["correct"])  # fmt: skip
                flipped += bool(line["details"].get("flipped"))
    assert 0 < flipped < rounds  # the noisy critic really flipped some (and not all) verdicts


def test_rescore_resumes_after_a_kill_and_skips_what_is_on_disk(folder):
    first = rescore(folder, "shapes-lenient")[0]
    again = rescore(folder, "shapes-lenient")[0]
    assert again.scored == 0 and again.reused == first.scored
    runs = run_folders([folder])
    # a kill mid-append leaves half a line; another run's file never got written
    cut = runs[0] / "rescore" / rescore_file_name("shapes-lenient")
    data = cut.read_bytes()
    cut.write_bytes(data[: data.rfind(b"\n", 0, len(data) - 1) + 1] + b'{"run_id": "sha')
    (runs[1] / "rescore" / rescore_file_name("shapes-lenient")).unlink()
    lost = 1 + len(Trace.load(runs[1]).rounds)
    resumed = rescore(folder, "shapes-lenient")[0]
    assert resumed.scored == lost and resumed.reused == first.scored - lost
    lines = cut.read_text().splitlines()
    assert all(json.loads(line) for line in lines) and len(lines) == len(Trace.load(runs[0]).rounds)


def test_unfinished_runs_are_skipped_and_counted(folder):
    run = run_folders([folder])[0]
    (run / "summary.json").unlink()
    result = rescore(folder, "shapes-colorblind")[0]
    assert result.unfinished == 1 and result.runs == 5
    assert not (run / "rescore").exists()


class CountingBatchCritic:
    """A batch critic that counts its batched calls; scores the image's mean red."""

    name = "counting"

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, image, prompt, spec=None):
        return self.score_batch([image], [prompt], [spec])[0]

    def score_batch(self, images, prompts, specs):
        self.calls.append(len(images))
        return [Critique(critic=self.name, score=sum(im.convert("RGB").getpixel((0, 0))) / 765) for im in images]


def test_rescore_batches_across_runs_and_reads_back_per_round(folder):
    critic = CountingBatchCritic()
    result = rescore([folder / "traces"], [critic], batch=4)[0]
    assert sum(critic.calls) == result.scored and max(critic.calls) == 4
    assert len(critic.calls) == -(-result.scored // 4)  # ceil: images of several runs share a call
    trace = Trace.load(run_folders([folder])[0])
    verdicts = round_verdicts(trace, "counting")
    assert [v["score"] for v in verdicts] == [
        sum(r.image.getpixel((0, 0))) / 765 for r in trace.rounds]  # fmt: skip
    own = round_verdicts(trace, "shapes")  # the run's own critic: its trace, no rescore file needed
    assert [v["score"] for v in own] == [r.score for r in trace.rounds]
    assert round_verdicts(trace, "never-rescored") == [None] * len(trace.rounds)


def test_rescore_command_through_its_parser(folder, capsys):
    parser = build_parser()
    args = parser.parse_args(["rescore", str(folder), "--critic", "shapes-positionblind", "--batch", "8"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "shapes-positionblind:" in out and "images scored" in out and "6 runs" in out
    assert all((r / "rescore" / "shapes-positionblind.jsonl").is_file() for r in run_folders([folder]))
    args = parser.parse_args(["rescore", str(folder), "--critic", "shapes-lenient:0.5"])
    with pytest.raises(ValueError, match="weight means nothing"):
        args.func(args)
    empty = folder.parent / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no milr runs"):
        rescore(empty, "shapes")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        rescore(folder.parent / "missing", "shapes")


def test_an_image_changed_since_it_was_scored_is_scored_again(folder):
    rescore(folder, "shapes-countblind")
    run = run_folders([folder])[0]
    trace = Trace.load(run)
    path = run / trace.rounds[0].image_file
    Image.new("RGB", (64, 64), "white").save(path)  # now an empty scene
    again = rescore(folder, "shapes-countblind")[0]
    assert again.scored == 1
    verdict = round_verdicts(Trace.load(run), "shapes-countblind")[0]
    assert verdict["score"] == 0.0 and verdict["correct"] is False  # the new image's verdict, not the old one's

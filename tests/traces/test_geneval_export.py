"""`export_geneval` on a real small sweep (ShapesWorld model, three GenEval tags, two samples each):
the folder layout GenEval's evaluator reads (`<index:05d>/metadata.jsonl`, `samples/<k:04d>.png`),
its metadata rules, every sample the very image its run returned, and a walk over the folder the way
the evaluator walks it (djghosh13/geneval `evaluation/evaluate_images.py`) pairs each image with the
metadata that scores it as the sweep itself scored it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from milr.bench.datasets import load_shapes
from milr.bench.runner import BenchSpec, run_bench
from milr.config import MILRConfig
from milr.critics import PromptSpec
from milr.mug.janus import JanusMUG
from milr.shapes import ShapesOracle, checkpoint_path
from milr.traces import Trace, export_geneval
from tests.traces.helpers import image, summary, write_run

TAGS = ("counting", "colors", "position")  # with `exclude`, with `color`, with `position`
# One prompt of each (ShapesEval, 3 per tag): with this model and one step, the colors and position
# prompts have one correct and one wrong sample each, so an image paired with the wrong metadata or
# sample shows in the scores.
KEYS = ("shapes-0006", "shapes-0009", "shapes-0012")
SAMPLES = 2
GENEVAL_TAGS = {"single_object", "two_object", "counting", "colors", "position", "color_attr"}
RELATIONS = {"left of", "right of", "above", "below"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A finished ShapesEval sweep (MILR, one step) and its trace folders in (prompt, sample) order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model decodes fastest on one thread on a shared machine
    try:
        mug = JanusMUG.from_pretrained(checkpoint_path(), device="cpu")
        items = [it for it in load_shapes(per_tag=3) if it.key in KEYS]
        config = MILRConfig(steps=1, seed=0).with_recommended(mug.recommended)
        out = tmp_path_factory.mktemp("sweep")
        results = run_bench(items, mug, BenchSpec("milr", config), ShapesOracle(), ShapesOracle(), out,
                            samples=SAMPLES, progress=False)  # fmt: skip
    finally:
        torch.set_num_threads(before)
    order = {it.key: i for i, it in enumerate(items)}
    records = sorted(map(json.loads, results.read_text().splitlines()), key=lambda r: (order[r["key"]], r["sample"]))
    assert [it.tag for it in items] == list(TAGS) and {r["correct"] for r in records} == {True, False}
    return items, records, [out / r["trace"] for r in records]


def geneval_walk(folder: Path) -> list[tuple[str, dict, Path]]:
    """(subfolder, metadata, image) for every image GenEval's evaluator would score in `folder`:
    subfolders whose name is all digits, each with `metadata.jsonl` read as one JSON document, and
    in its `samples/` every file whose name starts with digits followed by `.png`."""
    found = []
    for sub in os.listdir(folder):
        path = folder / sub
        if not path.is_dir() or not sub.isdigit():
            continue
        with open(path / "metadata.jsonl") as f:
            metadata = json.load(f)
        for name in os.listdir(path / "samples"):
            image = path / "samples" / name
            if image.is_file() and re.match(r"\d+\.png", name):
                found.append((sub, metadata, image))
    return found


def _nulls(value) -> list:
    if isinstance(value, dict):
        return [k for k, v in value.items() if v is None] + [n for v in value.values() for n in _nulls(v)]
    if isinstance(value, list):
        return [n for v in value for n in _nulls(v)]
    return []


def test_the_export_has_geneval_layout_and_metadata(sweep, tmp_path):
    items, _, traces = sweep
    out = export_geneval(traces, tmp_path / "geneval")
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}" for i in range(len(items))] + ["export.jsonl"]
    for i, item in enumerate(items):
        folder = out / f"{i:05d}"
        assert sorted(p.name for p in folder.iterdir()) == ["metadata.jsonl", "samples"]
        assert sorted(p.name for p in (folder / "samples").iterdir()) == [f"{k:04d}.png" for k in range(SAMPLES)]
        text = (folder / "metadata.jsonl").read_text()
        assert text.endswith("}\n") and text.count("\n") == 1  # one JSON object: GenEval json.load()s the file
        meta = json.loads(text)
        assert meta == {**item.spec.to_geneval(), "prompt": item.prompt}
        assert meta["tag"] in GENEVAL_TAGS and meta["tag"] == item.tag
        assert _nulls(meta) == []  # GenEval asks `'color' in req`: a null colour would be checked
        for j, req in enumerate(meta["include"]):
            assert isinstance(req["class"], str) and isinstance(req["count"], int) and req["count"] >= 1
            if "position" in req:  # [relation, index of an earlier include item]
                relation, target = req["position"]
                assert relation in RELATIONS and isinstance(target, int) and 0 <= target < j
    assert {m["tag"] for _, m, _ in geneval_walk(out)} == set(TAGS)


def test_each_sample_is_the_image_its_run_returned_and_scores_as_the_sweep_scored_it(sweep, tmp_path):
    items, records, traces = sweep
    out = export_geneval(traces, tmp_path / "geneval")
    rows = [json.loads(line) for line in (out / "export.jsonl").read_text().splitlines()]
    for n, (record, trace_dir) in enumerate(zip(records, traces, strict=True)):
        i, k = divmod(n, SAMPLES)
        sample = out / f"{i:05d}" / "samples" / f"{k:04d}.png"
        assert sample.read_bytes() == (trace_dir / "final.png").read_bytes(), (record["key"], record["sample"])
        trace = Trace.load(trace_dir)
        assert rows[n] == {"idx": i, "sample": k, "run_id": trace.run.run_id, "round": trace.summary.final_round,
                           "which": "final"}  # fmt: skip
    # Score the folder as GenEval's evaluator reads it, with the exact ShapesWorld rules in place of its
    # detector: each image meets the metadata next to it exactly as the sweep's own evaluation said.
    oracle = ShapesOracle()
    by_sample = {(r["key"], r["sample"]): r["correct"] for r in records}
    walked = geneval_walk(out)
    assert len(walked) == len(records)
    for sub, meta, png in walked:
        verdict = oracle(Image.open(png), meta["prompt"], PromptSpec.model_validate(meta))
        key = items[int(sub)].key
        assert verdict.details["correct"] == by_sample[(key, int(png.stem))], (sub, png.name)


def test_round_choice_and_a_second_export_into_the_same_folder(sweep, tmp_path):
    items, _, traces = sweep
    out = export_geneval(traces, tmp_path / "geneval", which="first")
    first_png = (traces[1] / Trace.load(traces[1]).rounds[0].image_file).read_bytes()
    assert (out / "00000" / "samples" / "0001.png").read_bytes() == first_png
    with pytest.raises(FileExistsError, match="already holds a GenEval export; pass overwrite=True"):
        export_geneval(traces, out)
    # Overwriting clears stale folders: a smaller export leaves none of the earlier prompts behind.
    export_geneval(traces[:SAMPLES], out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["00000", "export.jsonl"]
    assert len(geneval_walk(out)) == SAMPLES


def test_a_spec_without_its_prompt_or_with_nulls_still_gives_geneval_metadata(tmp_path):
    # A spec given as a dict (or by an older milr) may lack the prompt and hold nulls.
    writer = write_run(tmp_path / "run", 1, spec={"tag": "colors", "include": [{"class": "circle", "count": 1,
                                                                               "color": None}]})  # fmt: skip
    writer.finish(summary(1), image(0))
    out = export_geneval([tmp_path / "run"], tmp_path / "geneval")
    meta = json.loads((out / "00000" / "metadata.jsonl").read_text())
    assert meta == {"tag": "colors", "include": [{"class": "circle", "count": 1}], "prompt": "a photo of a red circle"}

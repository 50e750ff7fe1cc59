"""The benchmark scripts run top to bottom at tiny sizes and write the JSON their readers expect
(bench_gpu.py is run on a GPU only once, unattended: a crash there costs the whole device check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script: str, *args: str, timeout: int = 240) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OUT"} | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=BENCHMARKS.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_bench_gpu_runs_every_setting_at_a_tiny_size_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    tiny = "--hidden 64 --layers 2 --heads 4 --kv-heads 4 --intermediate 128 --vocab 512 --grid 2"
    run(
        "bench_gpu.py",
        *tiny.split(),
        *"--vision-hidden 32 --vision-layers 1 --device cpu --dtype float32 --batches 1,2 --repeats 1".split(),
        *("--backend", "eager", "--out", str(out)),
    )
    result = json.loads(out.read_text())
    for mode in ("eager", "compile"):
        for key in ("B=1", "B=2"):
            row = result[mode][key]
            assert row["images_per_s"] > 0 and row["seconds_median"] > 0 and len(row["seconds"]) == 1
    assert set(result["speedup_compile_vs_eager"]) == {"B=1", "B=2"} and result["skipped"] == []
    assert result["model"]["hidden"] == 64 and result["image_tokens"] == 4 and result["params_b"] > 0


def test_bench_gpu_defaults_are_janus_pro_7b():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_gpu
    finally:
        sys.path.remove(str(BENCHMARKS))
    import argparse

    import torch
    from transformers import JanusForConditionalGeneration

    from milr.mug.tiny import word_tokenizer

    defaults = dict(hidden=4096, layers=30, heads=32, kv_heads=32, intermediate=11008, vocab=102400)
    args = argparse.Namespace(**defaults, codes=16384, grid=24, vision_hidden=1024, vision_layers=24)
    with torch.device("meta"):  # shapes only, no memory
        model = JanusForConditionalGeneration(bench_gpu.janus_config(args, word_tokenizer()))
    assert 7.3e9 < sum(p.numel() for p in model.parameters()) < 7.5e9  # Janus-Pro-7B: 7.42 B
    assert model.config.vision_config.num_image_tokens == 576 and model.config.vq_config.num_embeddings == 16384


def test_bench_batch_quick_writes_every_batch_size(tmp_path):
    out = tmp_path / "batch.json"
    run("bench_batch.py", "--quick", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["quick"] is True and len(result["loadavg_start"]) == 3 and result["threads"] >= 1
    for model in ("bench_model", "shapes"):
        section = result[model]
        for b in (1, 4, 16):
            assert section[f"B={b}"]["images_per_s"] > 0
            assert section["reasoning"][f"B={b}"]["tokens_per_s"] > 0
        assert section["speedup_B16_vs_B1"] > 0
        assert len(set(section["B=16"]["image_prompt_tokens"])) > 1  # distinct lengths: left padding is real
    vs = result["bench_model"]["vs_transformers_B=1"]
    assert vs["ratio_draw"] > 0 and vs["ratio_tokens_only"] > 0

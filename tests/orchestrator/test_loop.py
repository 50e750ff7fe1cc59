"""The MILR loop end to end on a tiny random Janus with scripted critics."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from milr.config import ConfigError, MILRConfig
from milr.nodes.critique import stop_reason
from milr.nodes.latent_update import modalities_for_step
from milr.orchestrator import MILR, best_round, build_graph, route
from milr.traces import Trace
from tests.orchestrator.helpers import PixelCritic, ScriptedCritic

PROMPT = "a photo of a red cat"


def run(mug, critic, tmp_path, **config):
    milr = MILR(mug, critic, MILRConfig(max_reasoning_tokens=12, **config), out=tmp_path)
    return milr(PROMPT)


def test_router_and_stop_rule_are_pure():
    cfg = MILRConfig(steps=3, threshold=0.9)
    assert stop_reason(0.95, 0, cfg) == "threshold"
    assert stop_reason(0.5, 2, cfg) is None
    assert stop_reason(0.5, 3, cfg) == "steps"
    assert stop_reason(None, 1, cfg) is None
    assert route({"runs": {}, "queue": []}) == "__end__"
    assert route({"runs": {"r": {"phase": "new"}}}) == "latent_update"
    assert set(build_graph().nodes) == {"schedule", "generate", "critique", "latent_update"}


def test_passing_round_zero_stops_without_update(mug, tmp_path):
    res = run(mug, ScriptedCritic([0.95]), tmp_path, steps=5)
    assert len(res.rounds) == 1 and res.stop_reason == "threshold"
    assert res.rounds[0].modality == "none" and res.rounds[0].grad_norm == {}


def test_passing_round_three_gives_four_rounds(mug, tmp_path):
    res = run(mug, ScriptedCritic([0.1, 0.2, 0.3, 0.92]), tmp_path, steps=10)
    assert [r.round for r in res.rounds] == [0, 1, 2, 3]
    assert res.stop_reason == "threshold" and res.final_round == 3


def test_never_passing_makes_k_plus_one_generations_and_k_updates(mug, tmp_path):
    critic = ScriptedCritic([0.3])
    res = run(mug, critic, tmp_path, steps=4)
    assert critic.calls == 5 and len(res.rounds) == 5 and res.stop_reason == "steps"
    assert [r.modality for r in res.rounds] == ["none", "both", "both", "both", "both"]
    assert all(r.step_norm["text"] > 0 and r.step_norm["image"] > 0 for r in res.rounds[1:])


def test_low_reward_changes_the_decoded_text_prefix(mug, tmp_path):
    res = run(mug, ScriptedCritic([0.2]), tmp_path, steps=8, lr=0.5, optimize={"text"})
    assert any(r.text_prefix_changed for r in res.rounds[1:])
    assert len({tuple(r.text_prefix_ids) for r in res.rounds}) > 1


def _latent_files(res):
    return [load_file(res.trace_dir / r.latents) for r in res.rounds]


def test_text_only_never_touches_image_latents_and_image_only_never_text(mug, tmp_path):
    text_only = run(mug, ScriptedCritic([0.2]), tmp_path / "t", steps=3, optimize={"text"})
    assert all("image.z" not in t and "text.z" in t for t in _latent_files(text_only))
    assert all(r.image_prefix_ids == [] and r.modality in ("none", "text") for r in text_only.rounds)
    image_only = run(mug, ScriptedCritic([0.2]), tmp_path / "i", steps=3, optimize={"image"})
    files = _latent_files(image_only)
    assert all("text.z" not in t and "image.z" in t for t in files)
    assert len({r.reasoning for r in image_only.rounds}) == 1  # reasoning never changes
    assert not torch.equal(files[0]["image.z"], files[-1]["image.z"])


def test_alt_alternates_and_t2v_switches_at_half():
    alt = MILRConfig(strategy="alt", steps=4)
    assert [modalities_for_step(s, alt) for s in (1, 2, 3, 4)] == [["text"], ["image"], ["text"], ["image"]]
    t2v = MILRConfig(strategy="t2v", steps=5)
    assert [modalities_for_step(s, t2v) for s in range(1, 6)] == [["text"]] * 2 + [["image"]] * 3
    assert modalities_for_step(1, MILRConfig(optimize={"image"})) == ["image"]


def test_alt_run_records_alternating_modalities(mug, tmp_path):
    res = run(mug, ScriptedCritic([0.2]), tmp_path, steps=4, strategy="alt")
    assert [r.modality for r in res.rounds] == ["none", "text", "image", "text", "image"]


def test_select_best_and_last(mug, tmp_path):
    best = run(mug, ScriptedCritic([0.1, 0.7, 0.3]), tmp_path / "b", steps=2)
    assert best.final_round == 1 and best.score == 0.7 and best.best_round == 1
    assert best.image.tobytes() == best.rounds[1].image.tobytes()
    last = run(mug, ScriptedCritic([0.1, 0.7, 0.3]), tmp_path / "l", steps=2, select="last")
    assert last.final_round == 2 and last.score == 0.3


def test_best_round_ties_go_to_the_earliest():
    class R:
        def __init__(self, round, score):
            self.round, self.score = round, score

    assert best_round([R(0, 0.5), R(1, 0.5), R(2, None)]) == 0
    assert best_round([R(0, None), R(1, 0.1)]) == 1


def _comparable(trace_dir):
    trace = Trace.load(trace_dir)
    rows = []
    for r in trace.rounds:
        d = r.model_dump(exclude={"seconds"}) if hasattr(r, "model_dump") else dict(r)
        d.pop("seconds", None)
        d["pixels"] = r.image.tobytes()
        rows.append(d)
    return rows


def test_same_seed_gives_identical_trace(mug, tmp_path):
    a = run(mug, PixelCritic(), tmp_path / "a", steps=3, seed=7)
    b = run(mug, PixelCritic(), tmp_path / "b", steps=3, seed=7)
    assert _comparable(a.trace_dir) == _comparable(b.trace_dir)
    c = run(mug, PixelCritic(), tmp_path / "c", steps=3, seed=8)
    assert _comparable(a.trace_dir) != _comparable(c.trace_dir)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"lr": 0}, "lr"),
        ({"lambda_text": 1.5}, "lambda_text"),
        ({"lambda_image": 0}, "lambda_image"),
        ({"steps": -1}, "steps"),
        ({"optimize": []}, "optimize"),
        ({"strategy": "alt", "optimize": {"text"}}, "strategy"),
        ({"threshold": 2}, "threshold"),
        ({"cfg": 0}, "cfg"),
    ],
)
def test_bad_config_names_the_field(config, field):
    with pytest.raises(ConfigError, match=field):
        MILRConfig(**config)


def test_config_files_and_overrides(tmp_path):
    (tmp_path / "c.toml").write_text('[milr]\nsteps = 3\noptimize = ["text"]\n')
    cfg = MILRConfig.from_file(tmp_path / "c.toml")
    assert cfg.steps == 3 and cfg.optimize == {"text"}
    (tmp_path / "c.json").write_text(json.dumps({"lr": 0.1}))
    assert MILRConfig.from_file(tmp_path / "c.json").lr == 0.1
    assert cfg.override(steps=7, lr=None).steps == 7
    (tmp_path / "bad.toml").write_text("steps = 'many'")
    with pytest.raises(ConfigError, match="steps"):
        MILRConfig.from_file(tmp_path / "bad.toml")


@pytest.mark.parametrize(
    ("prompt", "match"),
    [("", "prompt"), ("   ", "prompt"), ("cat " * 400, "too long"), ("zqxj vbnw", "no word the model")],
)
def test_bad_prompt_fails_early_and_leaves_no_trace(mug, tmp_path, prompt, match):
    milr = MILR(mug, ScriptedCritic([0.5]), MILRConfig(steps=1, max_reasoning_tokens=12), out=tmp_path)
    with pytest.raises(ValueError, match=match):
        milr(prompt)
    assert not any(tmp_path.iterdir())


def test_stream_yields_round_events_live(mug, tmp_path):
    milr = MILR(mug, ScriptedCritic([0.1, 0.95]), MILRConfig(steps=3, max_reasoning_tokens=12), out=tmp_path)
    events = list(milr.stream(PROMPT))
    kinds = [e["event"] for e in events]
    assert kinds == ["run_start", "round_start", "round_end", "round_start", "round_end", "done"]
    assert events[4]["score"] == 0.95 and events[4]["stop_reason"] == "threshold"
    assert (tmp_path / events[0]["run_id"] / "round_01.png").exists()


def test_round_end_log_line_once_per_round(mug, tmp_path):
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        run(mug, ScriptedCritic([0.2]), tmp_path, steps=2)
    ends = [e for e in logs if e["event"] == "round_end"]
    assert [e["round"] for e in ends] == [0, 1, 2]
    assert all({"run_id", "score", "critics", "seconds"} <= set(e) for e in ends)


def test_checkpoint_recommendations_sit_under_explicit_settings():
    rec = {"cfg": 2.0, "steps": 9}
    cfg = MILRConfig(steps=3).with_recommended(rec)
    assert cfg.steps == 3 and cfg.cfg == 2.0
    assert MILRConfig().override(lr=0.1).with_recommended(rec).steps == 9
    assert MILRConfig(cfg=5.0).with_recommended(rec).cfg == 5.0

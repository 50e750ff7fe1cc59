"""MILRConfig refuses values that would fail mid-run: non-finite floats, a temperature that makes the
logits overflow, counts past any sane bound, and devices this machine does not have."""

from __future__ import annotations

import json
import math

import pytest
import torch

from milr.config import MAX_REASONING_TOKENS, MAX_STEPS, MIN_TEMPERATURE, ConfigError, MILRConfig

FLOATS = ("lr", "cfg", "temperature", "threshold", "lambda_text", "lambda_image")


@pytest.mark.parametrize("field", FLOATS)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_floats_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"{field}: Input should be a finite number"):
        MILRConfig(**{field: value})


def test_non_finite_floats_from_files_and_overrides(tmp_path):
    (tmp_path / "c.toml").write_text("[milr]\nlr = inf\n")
    with pytest.raises(ConfigError, match="lr: Input should be a finite number"):
        MILRConfig.from_file(tmp_path / "c.toml")
    (tmp_path / "c.json").write_text('{"cfg": NaN}')  # Python's json reads NaN and Infinity
    with pytest.raises(ConfigError, match="cfg: Input should be a finite number"):
        MILRConfig.from_file(tmp_path / "c.json")
    with pytest.raises(ConfigError, match="temperature"):
        MILRConfig().override(temperature=math.inf)


def test_temperature_has_a_floor_that_keeps_the_logits_finite():
    with pytest.raises(ConfigError, match="temperature: Input should be greater than or equal to 0.0001"):
        MILRConfig(temperature=1e-300)
    with pytest.raises(ConfigError, match="temperature"):
        MILRConfig(temperature=MIN_TEMPERATURE / 2)
    assert MILRConfig(temperature=MIN_TEMPERATURE).temperature == MIN_TEMPERATURE
    # Why the floor: at 1e-300 float32 logits overflow (what sampling then refuses); at the floor they do not.
    logits = torch.tensor([30.0, -30.0, 0.5])
    assert not torch.isfinite(logits / 1e-300).all()
    assert torch.isfinite(torch.softmax(logits * MILRConfig(cfg=100).cfg / MIN_TEMPERATURE, -1)).all()


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("steps", MAX_STEPS),
        ("max_reasoning_tokens", MAX_REASONING_TOKENS),
        ("lr", 10),
        ("cfg", 100),
        ("seed", 2**63 - 1),
    ],
)
def test_counts_and_scales_have_upper_bounds(field, limit):
    assert getattr(MILRConfig(**{field: limit}), field) == limit
    with pytest.raises(ConfigError, match=rf"{field}: Input should be less than or equal to"):
        MILRConfig(**{field: limit + 1})


@pytest.mark.parametrize("device", ["foo", "CUDA", "", "cuda:-1", "cuda:x"])
def test_a_device_that_is_no_torch_device_is_refused(device):
    with pytest.raises(ConfigError, match=r"device: .* is not a torch device; use 'cpu', 'cuda'"):
        MILRConfig(device=device)


def test_a_device_type_milr_does_not_run_on_is_refused():
    with pytest.raises(ConfigError, match="device: milr runs on cpu, cuda, mps, not 'meta'"):
        MILRConfig(device="meta")


def test_cpu_and_no_device_are_accepted():
    assert MILRConfig(device="cpu").device == "cpu"
    assert MILRConfig().device is None


def test_cuda_without_cuda_names_device_and_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0", "cuda:7"):
        with pytest.raises(ConfigError, match=r"device: CUDA is not available on this machine.*--device cpu"):
            MILRConfig(device=device)
    with pytest.raises(ConfigError, match="device"):
        MILRConfig().override(device="cuda")


def test_a_cuda_index_past_the_devices_of_this_machine_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert MILRConfig(device="cuda").device == "cuda"
    assert MILRConfig(device="cuda:0").device == "cuda:0"
    with pytest.raises(ConfigError, match=r"device: this machine has 1 CUDA device \(cuda:0 to cuda:0\)"):
        MILRConfig(device="cuda:7")
    with pytest.raises(ConfigError, match="device"):
        MILRConfig(device="cuda:1")


def test_mps_without_mps_is_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device: MPS is not available on this machine"):
        MILRConfig(device="mps")


def test_this_machines_cuda_is_checked_for_real():
    """No mocks: on a GPU machine cuda and its last index pass and one past it fails; elsewhere cuda fails."""
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        assert MILRConfig(device="cuda").device == "cuda"
        assert MILRConfig(device=f"cuda:{count - 1}").device == f"cuda:{count - 1}"
        with pytest.raises(ConfigError, match=f"this machine has {count} CUDA device"):
            MILRConfig(device=f"cuda:{count}")
    else:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            MILRConfig(device="cuda")


def test_a_valid_config_round_trips_through_json():
    cfg = MILRConfig(lr=0.1, temperature=0.5, device="cpu", steps=MAX_STEPS)
    assert MILRConfig(**json.loads(json.dumps(cfg.to_json_dict()))) == cfg

"""Python conventions of the public API: `MILR.from_pretrained` as transformers users call it (dtype,
device, device_map, revision, model keywords), safetensors-only loading, a device override on
resume, and how `MILR`, `MILRResult` and `Trace` show themselves (repr, notebook HTML)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from milr.config import MILRConfig
from milr.mug import janus
from milr.mug.janus import JanusMUG, ModelWeightsNotFoundError, PickleCheckpointError
from milr.mug.tiny import tiny_mug
from milr.orchestrator import MILR
from milr.orchestrator.facade import _result_from_trace, run_config
from milr.orchestrator.registry import build_model
from milr.shapes import ShapesOracle
from milr.traces import Trace
from tests.orchestrator.helpers import PixelCritic, ScriptedCritic
from tests.traces.helpers import EVIL, image, record, summary, write_run

PROMPT = "a photo of a red circle"


@pytest.fixture(autouse=True)
def _on_one_thread(one_thread):
    """Every test here runs on one thread (`one_thread` in tests/conftest.py)."""


@pytest.fixture
def no_loading(monkeypatch):
    """Loading the model fails the test: checks that must come first are seen to come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad argument was refused")

    monkeypatch.setattr(JanusMUG, "from_pretrained", refuse)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """A tiny random Janus saved as transformers saves it (safetensors)."""
    folder = tmp_path_factory.mktemp("tiny")
    mug = tiny_mug(seed=0)
    mug.model.save_pretrained(folder)
    mug.tokenizer.save_pretrained(folder)
    return folder


def pickled(folder: Path, dest: Path) -> Path:
    """`folder` with its weights as a pickle `pytorch_model.bin` only (as old checkpoints ship)."""
    for f in folder.iterdir():
        if f.name != "model.safetensors":
            (dest / f.name).write_bytes(f.read_bytes())
    torch.save(tiny_mug(seed=0).model.state_dict(), dest / "pytorch_model.bin")
    return dest


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------- from_pretrained
@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (torch.bfloat16, torch.bfloat16),
        ("bfloat16", torch.bfloat16),
        ("bf16", torch.bfloat16),
        ("torch.float16", torch.float16),
        ("auto", torch.float32),
    ],  # fmt: skip  # auto: the checkpoint's float32
)
def test_from_pretrained_takes_a_torch_dtype_or_its_name(dtype, expected, tmp_path):
    milr = MILR.from_pretrained("shapes", [ShapesOracle()], dtype=dtype, device="cpu", out=tmp_path)
    assert milr.mug.dtype == expected and next(milr.mug.model.parameters()).dtype == expected
    assert milr.config.dtype == janus.DTYPE_NAMES[expected]  # what the trace records


def test_torch_dtype_is_a_deprecated_alias_of_dtype(tmp_path):
    with pytest.warns(FutureWarning, match="torch_dtype.*deprecated.*dtype"):
        milr = MILR.from_pretrained("shapes", [ShapesOracle()], torch_dtype=torch.bfloat16, out=tmp_path)
    assert milr.mug.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="pass the dtype once"):
        MILR.from_pretrained("shapes", [ShapesOracle()], dtype="float32", torch_dtype="bfloat16")


def test_device_map_and_model_keywords_reach_transformers(tmp_path):
    milr = MILR.from_pretrained("shapes", [ShapesOracle()], device_map="cpu", attn_implementation="eager")
    assert milr.mug.device == torch.device("cpu") and milr.config.device == "cpu"
    assert milr.mug.model.config._attn_implementation == "eager"  # a model keyword, applied by transformers
    # the same device written two ways agrees; a map that puts everything on the CPU is one device
    again = MILR.from_pretrained("shapes", [ShapesOracle()], device="cpu", device_map={"": "cpu:0"}, out=tmp_path)
    assert again.mug.device.type == "cpu"


def test_revision_and_cache_dir_load_that_revision_from_the_hub_cache(tmp_path):
    """A hub id resolved from a (local) hub cache: `revision` picks the snapshot, `cache_dir` and
    `local_files_only` reach every loader, so nothing touches the network."""
    cache = tmp_path / "hub"
    repo = cache / "models--org--janus"
    for commit, ref, seed in (("a" * 40, "main", 0), ("b" * 40, "v1", 1)):
        mug = tiny_mug(seed=seed)
        mug.model.save_pretrained(repo / "snapshots" / commit)
        mug.tokenizer.save_pretrained(repo / "snapshots" / commit)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    hub = {"cache_dir": cache, "local_files_only": True}
    main = JanusMUG.from_pretrained("org/janus", device="cpu", **hub)
    v1 = JanusMUG.from_pretrained("org/janus", device="cpu", revision="v1", **hub)
    assert same_weights(main.model, tiny_mug(seed=0).model)
    assert same_weights(v1.model, tiny_mug(seed=1).model) and v1.revision == "v1"


@pytest.mark.parametrize(
    ("dtype", "shown"), [("bf32", "'bf32'"), (torch.int8, "torch.int8"), ("float64", "'float64'")]
)
def test_an_unknown_dtype_names_the_field_and_the_valid_values(dtype, shown, no_loading):
    with pytest.raises(ValueError, match=re.escape(f"dtype={shown} is not a dtype milr loads")) as err:
        MILR.from_pretrained("shapes", [ShapesOracle()], dtype=dtype)
    assert "'bfloat16'" in str(err.value) and "'auto'" in str(err.value)


ABSENT = [
    ({"device": "cuda:99"}, "device='cuda:99'"),
    ({"device_map": "cuda:99"}, "device_map='cuda:99'"),
    ({"device_map": {"": 99}}, "device_map='cuda:99'"),  # an int in a map is a GPU index
    ({"device": "foo"}, "device='foo'"),
]
if not torch.cuda.is_available():
    ABSENT.append(({"device": "cuda"}, "device='cuda'"))
if not torch.backends.mps.is_available():
    ABSENT.append(({"device": "mps"}, "device='mps'"))


@pytest.mark.parametrize(("placement", "named"), ABSENT)
def test_an_absent_device_fails_before_anything_loads(placement, named, no_loading):
    with pytest.raises(ValueError, match=re.escape(named)) as err:
        MILR.from_pretrained("shapes", [ShapesOracle()], **placement)
    assert "this machine has: cpu" in str(err.value)


def test_device_and_device_map_that_disagree_are_refused():
    with pytest.raises(ValueError, match="disagree"):
        JanusMUG.from_pretrained("unused", device="cpu", device_map="meta")


def test_spreading_a_model_over_devices_needs_accelerate_and_says_so():
    from transformers.utils import is_accelerate_available

    if is_accelerate_available():
        pytest.skip("accelerate is installed: transformers places the model")
    with pytest.raises(ImportError, match=r"accelerate.*device='cuda'"):
        JanusMUG.from_pretrained("unused", device_map="auto")


def test_a_model_spread_over_devices_is_refused_with_the_fix():
    model = tiny_mug(seed=0).model
    model.hf_device_map = {"model.language_model": 0, "model.vqmodel": "cpu"}
    with pytest.raises(ValueError, match=r"cpu, cuda:0, but milr decodes on one device"):
        janus._loaded_device(model)
    model.hf_device_map = {"": "cpu"}
    assert janus._loaded_device(model) == torch.device("cpu")


# ----------------------------------------------------------------------------- safetensors only
def test_a_pickle_checkpoint_is_refused_unless_trusted(tiny_folder, tmp_path):
    folder = pickled(tiny_folder, tmp_path)
    for load in (
        lambda **kw: JanusMUG.from_pretrained(folder, device="cpu", **kw),
        lambda **kw: MILR.from_pretrained(folder, [ShapesOracle()], device="cpu", **kw).mug,
        lambda **kw: build_model(str(folder), MILRConfig(device="cpu"), **kw),  # the CLI's and server's loader
    ):
        with pytest.raises(PickleCheckpointError, match="pytorch_model.bin.*use_safetensors=False") as err:
            load()
        assert str(tmp_path) not in str(err.value)  # the folder's name, not the machine's path
        assert same_weights(load(use_safetensors=False).model, tiny_mug(seed=0).model)  # opted in: loads as saved


def test_a_trusted_pickle_with_its_own_lm_head_loads_untied(tmp_path):
    """As for safetensors (tests/mug/test_batch.py): a shipped lm_head is not replaced by the embeddings,
    whose tie transformers 5 turns on by default; here the names come from the trusted pickle."""
    mug = tiny_mug(seed=0)
    mug.model.lm_head.weight = torch.nn.Parameter(torch.randn_like(mug.model.lm_head.weight))
    mug.model.save_pretrained(tmp_path)
    mug.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(mug.model.state_dict(), tmp_path / "pytorch_model.bin")
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("tie_word_embeddings", None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = JanusMUG.from_pretrained(tmp_path, device="cpu", use_safetensors=False).model
    assert loaded.config.tie_word_embeddings is False
    loaded.tie_weights()
    assert torch.equal(loaded.lm_head.weight, mug.model.lm_head.weight)


def test_the_tiny_model_takes_no_loading_options():
    with pytest.raises(ValueError, match="built, not loaded: drop revision"):
        build_model("tiny", MILRConfig(), revision="v1")


def test_a_hub_repo_of_pickles_is_refused_unless_trusted(tmp_path, tiny_folder):
    """A hub id whose cached snapshot holds only `pytorch_model.bin` (read from a local hub cache:
    `local_files_only` keeps the network out of it)."""
    snap = tmp_path / "models--org--pickles" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    pickled(tiny_folder, snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("c" * 40)
    hub = {"cache_dir": tmp_path, "local_files_only": True, "device": "cpu"}
    with pytest.raises(PickleCheckpointError, match="model 'org/pickles' has no safetensors weights"):
        JanusMUG.from_pretrained("org/pickles", **hub)
    assert same_weights(
        JanusMUG.from_pretrained("org/pickles", use_safetensors=False, **hub).model, tiny_mug(seed=0).model
    )
    assert issubclass(PickleCheckpointError, ModelWeightsNotFoundError)  # code catching missing weights still does


def test_transformers_safetensors_refusal_becomes_the_pickle_message(monkeypatch):
    """A hub repo of pickles not in the cache: transformers itself refuses it under use_safetensors=True
    (message of transformers 5), and milr says why and how to opt in."""

    def refuse(*args, **kwargs):
        raise OSError(
            "org/old does not appear to have a file named model.safetensors or model.safetensors.index.json and "
            "thus cannot be loaded with `safetensors`. Please do not set `use_safetensors=True`."
        )

    monkeypatch.setattr(janus.JanusConfig, "from_pretrained", refuse)
    with pytest.raises(PickleCheckpointError, match="model 'org/old' has no safetensors.*use_safetensors=False"):
        JanusMUG.from_pretrained("org/old", local_files_only=True)


# ----------------------------------------------------------------------------- resume placement
def _as_if_killed_on_a_gpu_box(run: Path) -> None:
    """Keep round 0 only (as a kill during round 1 leaves it) and record a placement this machine lacks:
    many GPUs, bf16, compile."""
    (run / "summary.json").unlink()
    lines = (run / "rounds.jsonl").read_text().splitlines(keepends=True)
    (run / "rounds.jsonl").write_text(lines[0])
    info = json.loads((run / "run.json").read_text())
    info["config"].update(device="cuda:99", dtype="bfloat16", compile=True)
    (run / "run.json").write_text(json.dumps(info))


def test_resume_runs_where_this_process_runs_not_where_the_run_started(tmp_path):
    milr = MILR(tiny_mug(seed=0), PixelCritic(), MILRConfig(steps=1, max_reasoning_tokens=8), out=tmp_path)
    first = milr(PROMPT, name="run")
    _as_if_killed_on_a_gpu_box(tmp_path / "run")
    here = run_config(Trace.load(tmp_path / "run"), MILRConfig(device="cpu"))
    assert (here.device, here.dtype, here.compile) == ("cpu", None, False)
    assert (here.steps, here.max_reasoning_tokens) == (1, 8)  # what the run computes comes from run.json
    again = milr.resume(tmp_path / "run")

    def computed(result):  # what a round computes (its timings aside)
        return [(r.round, r.reasoning, r.text_prefix_ids, r.image_prefix_ids, r.score) for r in result.rounds]

    assert computed(again) == computed(first)  # round 1 redone, identically


def test_milr_resume_takes_a_device(tmp_path, capsys):
    from milr.cli import main

    args = ["--model", "tiny", "--critic", "shapes", "--steps", "1", "--out", str(tmp_path), "--name", "run"]
    assert main(["run", PROMPT, *args, "--quiet"]) == 0
    _as_if_killed_on_a_gpu_box(tmp_path / "run")
    capsys.readouterr()
    assert main(["resume", str(tmp_path / "run"), "--device", "cpu", "--quiet"]) == 0, capsys.readouterr().err
    assert Trace.load(tmp_path / "run").summary is not None and len(Trace.load(tmp_path / "run").rounds) == 2


# ----------------------------------------------------------------------------- repr and notebook HTML
def test_milr_repr_names_model_critics_with_weights_config_and_batch(tmp_path):
    critics = [ScriptedCritic([0.5]), ShapesOracle()]
    milr = MILR(tiny_mug(seed=0), critics, MILRConfig(steps=3, threshold=0.8), weights=[0.25, 0.75], out=tmp_path,
                max_batch=4)  # fmt: skip
    text = repr(milr)
    assert text.startswith("MILR(model='janus', device='cpu', dtype=float32, critics='scripted:0.25,shapes:0.75'")
    for part in ("steps=3", "threshold=0.8", "select='best'", "optimize=['image', 'text']", "max_batch=4"):
        assert part in text


def _hostile_trace(path: Path) -> Trace:
    writer = write_run(path, 0, prompt=EVIL)
    for k in range(3):
        writer.write_round(record(k, reasoning=f"{EVIL} plan {k}", score=0.1 * (k + 1)), image(k))
    writer.finish(summary(3, final_round=1, best_round=2, stop_reason=EVIL), image(1))
    return Trace.load(path)


def _assert_inert(html: str) -> None:
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html  # as text


def test_result_html_shows_every_round_the_returned_one_and_stays_inert(tmp_path):
    result = _result_from_trace(_hostile_trace(tmp_path / "run"))
    html = result._repr_html_()
    _assert_inert(html)
    figures = re.findall(r'<figure class="round( returned)?".*?</figure>', html, re.S)
    assert len(figures) == 3 and [bool(f) for f in figures] == [False, True, False]  # round 1 was returned
    assert html.count('src="data:image/png;base64,') == 3
    assert "round 1 · 0.200 · returned" in html and "round 2 · 0.300 · best" in html
    assert "plan 1" in html and "plan 0" not in html  # the returned round's reasoning
    assert "stopped: &lt;script&gt;" in html  # the stop reason, escaped like every string


def test_trace_html_and_repr(tmp_path):
    trace = _hostile_trace(tmp_path / "run")
    html = trace._repr_html_()
    _assert_inert(html)
    assert html.count("<figure") == 3 and 'class="round returned"' in html
    assert repr(trace) == f"Trace('run', rounds=3, stop_reason={EVIL!r})"
    write_run(tmp_path / "open", 2).close()
    html = Trace.load(tmp_path / "open")._repr_html_()
    assert "unfinished: 2 rounds on disk" in html and 'class="round returned"' not in html
    assert "reasoning</b> of round 1" in html  # the last round's, while there is no returned one


def test_a_real_run_records_its_revision_and_shows_itself_in_a_notebook(tmp_path):
    config = MILRConfig(steps=1)
    milr = MILR.from_pretrained("shapes", [ShapesOracle()], config=config, device="cpu", revision="v2", out=tmp_path)
    assert milr.mug.revision == "v2"
    result = milr(PROMPT)
    assert Trace.load(result.trace_dir).run.model_revision == "v2"  # the trace says which revision ran
    html = result._repr_html_()
    assert html.count("<figure") == len(result.rounds) == 2
    assert result.prompt == PROMPT and PROMPT in html
    assert html.count('class="round returned"') == 1
    assert re.search(rf"round {result.final_round} · [0-9.—]+ · returned", html)

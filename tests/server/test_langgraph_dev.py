"""MILR through LangGraph's own tooling: the real `langgraph dev` server (the CLI, in-memory runtime)
on a free loopback port, serving the graph `langgraph.json` names, driven by the real `langgraph_sdk`
client. The streamed `custom` round events must match the trace folders on disk; a second run on the
same server must work; every finished run's folder lock must be free (the server holds none).

Offline: LangSmith tracing and CLI analytics are off and no API key is passed to the server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SKIP = 'the server extra is not installed (Python >= 3.11): pip install -e ".[server]"'
pytest.importorskip("langgraph_cli", reason=SKIP)
pytest.importorskip("langgraph_api", reason=SKIP)  # `langgraph dev`'s in-memory server (the [inmem] extra)
langgraph_sdk = pytest.importorskip("langgraph_sdk", reason=SKIP)
httpx = pytest.importorskip("httpx")

from milr.traces import Trace, TraceWriter  # noqa: E402

pytestmark = pytest.mark.slow  # a real server process: its start-up imports torch and transformers

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "langgraph_cli"]  # the `langgraph` command of this environment
STARTUP_SECONDS = 120  # torch and transformers import on a shared 2-core machine
PROMPT = "a photo of a triangle above a circle"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def offline_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def server_config(folder: Path) -> Path:
    """The repository's langgraph.json, with its graph path made absolute so that the server runs in
    `folder` (the in-memory runtime keeps its state in `.langgraph_api/` of the working folder)."""
    config = json.loads((REPO / "langgraph.json").read_text())
    assert config["graphs"] == {"milr": "./milr/server.py:graph"}
    config["graphs"] = {"milr": f"{REPO / 'milr' / 'server.py'}:graph"}
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"langgraph dev was not healthy after {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("langgraph-dev")
    port, log = free_port(), folder / "server.log"
    command = [*CLI, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "--config", str(server_config(folder))],
            cwd=folder,
            env=offline_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def client(server):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NO_PROXY", "127.0.0.1,localhost")  # no proxy between the SDK and its loopback server
        env.setenv("no_proxy", "127.0.0.1,localhost")
        yield langgraph_sdk.get_sync_client(url=server, api_key=None)  # api_key=None: send no key


def context(out: Path, **config) -> dict:
    return {
        "model": "shapes",
        "critics": "shapes",
        "config": {"steps": 2, "threshold": 1.0, **config},
        "out": str(out),
    }


def unlocked(run_dir: Path) -> bool:
    TraceWriter(run_dir, resume=True).close()  # RunLockedError if the server still held the folder
    return True


def test_a_run_streams_its_rounds_and_writes_the_same_trace(client, tmp_path):
    (assistant,) = client.assistants.search(graph_id="milr")
    # What Studio draws and the form it offers: the graph's topology and the settings context.
    drawn = {node["id"] for node in client.assistants.get_graph(assistant["assistant_id"])["nodes"]}
    assert drawn == {"__start__", "schedule", "latent_update", "generate", "critique", "__end__"}
    schema = client.assistants.get_schemas(assistant["assistant_id"])["context_schema"]
    assert set(schema["properties"]) == {"model", "critics", "config", "out", "max_batch"}
    assert all(field.get("description") for field in schema["properties"].values())
    custom, nodes, last_update = [], set(), None
    for part in client.runs.stream(
        None, "milr", input={"prompt": PROMPT}, context=context(tmp_path), stream_mode=["custom", "updates"]
    ):
        assert part.event != "error", part.data
        if part.event == "custom":
            custom.append(part.data)
        elif part.event == "updates":
            nodes |= set(part.data)
            last_update = part.data.get("schedule", last_update)
    assert nodes == {"schedule", "latent_update", "generate", "critique"}
    assert [e["event"] for e in custom if e["event"] != "round_start"] == ["run_start"] + ["round_end"] * 3 + [
        "run_done"
    ]
    run_dir = Path(custom[0]["trace_dir"])
    assert run_dir.parent == tmp_path
    trace = Trace.load(run_dir)
    rounds = [e for e in custom if e["event"] == "round_end"]
    assert [(e["round"], e["score"], e["reasoning"]) for e in rounds] == [
        (r.round, r.score, r.reasoning) for r in trace.rounds
    ]
    assert [e["image"] for e in rounds] == [str(run_dir / r.image_file) for r in trace.rounds]
    assert custom[-1]["summary"] == trace.summary.model_dump(mode="json")
    assert last_update == {"queue": [], "runs": {}, "finished": [run_dir.name]}  # the checkpointed end state
    assert unlocked(run_dir)


def test_bad_settings_fail_the_run_with_the_field_named(client, tmp_path):
    # The SDK raises the run's error as a plain Exception carrying the server's message.
    with pytest.raises(Exception, match=r"(?s)validation error for MILRSettings.*steps.*greater than or equal to 0"):
        client.runs.wait(None, "milr", input={"prompt": PROMPT}, context=context(tmp_path, steps=-1))
    assert not any(tmp_path.iterdir())


def test_the_server_goes_on_serving_runs_after_a_failed_one(client, tmp_path):
    """A second and third run on the same server: two prompts batched together, on a thread."""
    thread = client.threads.create()
    prompts = ["a photo of two circles", "a photo of a red square"]
    state = client.runs.wait(
        thread["thread_id"], "milr", input={"prompts": prompts}, context={**context(tmp_path, steps=1), "max_batch": 2}
    )
    assert sorted(state["finished"]) == sorted(d.name for d in tmp_path.iterdir())
    for run_dir in tmp_path.iterdir():
        trace = Trace.load(run_dir)
        assert trace.run.prompt in prompts and trace.summary.rounds == len(trace.rounds) and unlocked(run_dir)
        assert trace.rounds[0].seconds["batch"] == 2.0  # both runs' round 0 came out of one decode


def test_a_person_scores_a_round_through_the_sdk(client, tmp_path):
    """The human critic pauses the server's run at `critique`; the SDK resumes it on the thread,
    without resending the context; the person's score and rationale land in the trace."""
    thread = client.threads.create()["thread_id"]
    settings = {**context(tmp_path, steps=0), "critics": "shapes,human"}
    parts = list(client.runs.stream(thread, "milr", input={"prompt": PROMPT}, context=settings, stream_mode="updates"))
    (asked,) = [i for p in parts if p.event == "updates" for i in p.data.get("__interrupt__", [])]
    question = asked["value"]
    assert Path(question["image"]).is_file() and question["reasoning"]
    assert [c["critic"] for c in question["critics"]] == ["shapes"]  # the other critics' scores come along
    answer = {"score": 0.4, "rationale": "the triangle is under the circle"}
    for part in client.runs.stream(thread, "milr", command={"resume": answer}, stream_mode="custom"):
        assert part.event != "error", part.data
    (run_dir,) = tmp_path.iterdir()
    (round_0,) = Trace.load(run_dir).rounds
    human = next(c for c in round_0.record.critiques if c.critic == "human")
    assert (human.score, human.rationale) == (0.4, answer["rationale"]) and unlocked(run_dir)

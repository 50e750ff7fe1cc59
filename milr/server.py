"""The MILR graph for LangGraph's own server and Studio: `langgraph dev` loads `graph` from here
(see `langgraph.json` at the repository root; install with `pip install "milr[server]"`).

The server compiles nothing itself and brings its own checkpointer, so `graph` is compiled without
one. A run's `context` is `MILRSettings` as JSON (model, critics, config, out, max_batch); the model
and critics are loaded on the first run that names them and cached for the server's lifetime. Runs
stream the facade's round events on the `custom` stream mode and write the same trace folders.

    {"input": {"prompt": "a photo of a triangle above a circle"},
     "context": {"model": "shapes", "critics": "shapes", "config": {"steps": 10}, "out": "traces"},
     "stream_mode": ["custom", "updates"]}
"""

from milr.orchestrator.graph import build_graph

graph = build_graph().compile(name="milr")

__all__ = ["graph"]

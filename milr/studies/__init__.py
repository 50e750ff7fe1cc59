"""Reward-model studies (DESIGN §7): rescore finished runs with other critics, compare critics with
the evaluator image by image, and run whole studies from a SPEC.toml into a report.

    from milr.studies import rescore, run_study
    rescore(["bench/milr"], "shapes-countblind")          # rescore/<critic>.jsonl beside each run
    run_study("examples/shapes_study.toml", "studies/x")  # study.json, study.md, study.html

The names are imported on first use (PEP 562): importing the package loads no torch.
"""

from importlib import import_module

_PUBLIC = {
    "Judged": "milr.studies.metrics",
    "auc": "milr.studies.metrics",
    "diagnostics": "milr.studies.metrics",
    "RescoreResult": "milr.studies.rescore",
    "rescore": "milr.studies.rescore",
    "round_verdicts": "milr.studies.rescore",
    "StudySpec": "milr.studies.spec",
    "load_spec": "milr.studies.spec",
    "StudyResult": "milr.studies.study",
    "run_study": "milr.studies.study",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'milr.studies' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)

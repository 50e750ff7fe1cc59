"""A run's last files come from what the graph already read: `final.png` is the chosen round's PNG
file itself, and the report rendered from the rounds in memory equals the report of the folder read
back from disk."""

from __future__ import annotations

from milr.config import MILRConfig
from milr.orchestrator import MILR
from milr.traces import Trace
from milr.traces.report import write_report
from tests.orchestrator.helpers import PixelCritic


def test_final_image_and_report_equal_what_the_finished_folder_gives(mug, tmp_path, one_thread):
    config = MILRConfig(steps=3, seed=5, max_reasoning_tokens=8, threshold=1.0, select="best")
    result = MILR(mug, PixelCritic(), config, out=tmp_path)("a photo of a red cat", name="r")
    run_dir = result.trace_dir
    trace = Trace.load(run_dir)
    assert len(trace.rounds) == 4 and trace.summary is not None
    assert (run_dir / "final.png").read_bytes() == trace.rounds[trace.summary.final_round].image_bytes()

    page = (run_dir / "report.html").read_bytes()
    assert b"summary" in page.lower() and trace.summary.stop_reason.encode() in page
    write_report(run_dir)  # rebuilt from the folder alone
    assert (run_dir / "report.html").read_bytes() == page

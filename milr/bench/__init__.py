"""Benchmark harness: datasets (per-tag, stratified limits), a resumable runner (baseline / MILR /
best-of-N) that continues a folder only with the same settings, summaries, and sweep reports
(`milr bench report` / `compare`)."""

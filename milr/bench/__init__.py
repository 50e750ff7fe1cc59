"""Benchmark harness (issue 7): datasets, a resumable runner (baseline / MILR / best-of-N), summaries."""

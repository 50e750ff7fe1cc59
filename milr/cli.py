"""The `milr` command: run, resume, traces, bench.

`milr run "PROMPT"` uses the packaged ShapesWorld model and its exact oracle unless told otherwise,
so it works offline on any machine. Critics are chosen by name (`--critic gpt4o:0.5,detector:0.5`);
the name → constructor table below is the only registry milr has.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from milr.config import ConfigError, MILRConfig
from milr.log import configure_logging
from milr.orchestrator.registry import CRITICS, build_critics, build_model

console = Console(stderr=True)
DEFAULT_BATCH = 16  # runs per decode: batching pays on a CPU too (8x images/s at 16 on ShapesWorld)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


# --------------------------------------------------------------------------- run / resume
def _config_from_args(args) -> MILRConfig:
    config = MILRConfig.from_file(args.config) if args.config else MILRConfig()
    return config.override(
        steps=args.steps,
        strategy=args.strategy,
        lr=args.lr,
        threshold=args.threshold,
        cfg=args.cfg,
        seed=args.seed,
        select=args.select,
        optimize=args.optimize.split(",") if args.optimize else None,
        device=args.device,
    )


def _progress_table(rows: list[dict], title: str) -> Table:
    """One row per finished round (a single run) or per run with its latest round (a batch)."""
    batch = len({ev["run_id"] for ev in rows}) > 1
    table = Table(title=title, title_justify="left")
    for col in (("run",) if batch else ()) + ("round", "score", "critics", "reasoning"):
        table.add_column(col, overflow="fold")
    if batch:
        rows = list({ev["run_id"]: ev for ev in rows}.values())
    for ev in rows:
        score = "-" if ev["score"] is None else f"{ev['score']:.3f}"
        critics = ", ".join(f"{k}={'-' if v is None else f'{v:.2f}'}" for k, v in ev["critics"].items())
        cells = [str(ev["round"]), score, critics, ev["reasoning"][:80]]
        table.add_row(*([ev["run_id"]] if batch else []), *cells)
    return table


def _drive(events, title: str) -> list:
    rows: list[dict] = []
    results = []
    with Live(_progress_table(rows, title), console=console, refresh_per_second=4, transient=False) as live:
        for ev in events:
            if ev["event"] == "round_start":
                live.update(_progress_table(rows, f"{title} - {ev['run_id']} round {ev['round']} ..."))
            elif ev["event"] == "round_end":
                rows.append(ev)
                live.update(_progress_table(rows, title))
            elif ev["event"] == "done":
                results.append(ev["result"])
    for result in results:
        console.print(
            f"[bold]done[/]: {result.stop_reason}, returned round {result.final_round} "
            f"(score {result.score}), {len(result.rounds)} rounds in {result.seconds:.1f}s"
        )
        console.print(f"trace: {result.trace_dir}  report: {result.trace_dir / 'report.html'}")
    return results


def _prompts_from_args(args) -> list[str]:
    prompts = list(args.prompt)
    if args.prompts:
        path = Path(args.prompts)
        if not path.is_file():
            raise FileNotFoundError(f"--prompts file {path.name!r} does not exist")
        prompts += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise ValueError("give a prompt, several prompts, or --prompts FILE (one prompt per line)")
    if args.name and len(prompts) > 1:
        raise ValueError("--name names one run; with several prompts the run ids are generated")
    return prompts


def cmd_run(args) -> int:
    from milr.orchestrator import MILR

    prompts = _prompts_from_args(args)
    config = _config_from_args(args)
    mug = build_model(args.model, config)
    config = config.with_recommended(mug.recommended)
    critics, weights = build_critics(args.critic, mug)
    milr = MILR(mug, critics, config, weights=weights if len(critics) > 1 else None, out=args.out, checkpoint=True,
                max_batch=args.batch)  # fmt: skip
    title = f"milr: {prompts[0]}" if len(prompts) == 1 else f"milr: {len(prompts)} prompts, batch {args.batch}"
    names = [args.name] if args.name else None
    _drive(milr.stream_batch(prompts, names=names), title)
    return 0


def cmd_resume(args) -> int:
    from milr.orchestrator import MILR
    from milr.traces import Trace

    first = Trace.load(args.run_dir[0])
    config = MILRConfig(**first.run.config)
    mug = build_model(args.model or first.run.model, config)
    critics_text = args.critic or ",".join(f"{c['name']}:{c['weight']}" for c in first.run.critics)
    critics, weights = build_critics(critics_text, mug)
    milr = MILR(mug, critics, config, weights=weights if len(critics) > 1 else None,
                out=Path(args.run_dir[0]).parent, max_batch=args.batch)  # fmt: skip
    title = f"milr resume: {first.run.prompt}" if len(args.run_dir) == 1 else f"milr resume: {len(args.run_dir)} runs"
    _drive(milr.stream_resume(*args.run_dir), title)
    return 0


# --------------------------------------------------------------------------- traces
def cmd_traces(args) -> int:
    from milr.traces import Trace, list_table, show, write_report

    if args.action == "list":
        console.print(list_table(args.path or "traces"))
    elif args.action == "show":
        show(Trace.load(args.path), Console())
    elif args.action == "report":
        console.print(f"report: {write_report(args.path)}")
    return 0


# --------------------------------------------------------------------------- bench
def _bench_items(args):
    from milr.bench import datasets

    if args.dataset == "geneval":
        return datasets.load_geneval(args.metadata)
    if args.dataset == "t2i":
        return datasets.load_t2i_compbench(args.prompts, args.category)
    if args.dataset == "wise":
        return datasets.load_wise(args.data)
    return datasets.load_shapes(args.per_tag)


def cmd_bench(args) -> int:
    from milr.bench.runner import select_items
    from milr.bench.summary import compare, write_summary

    if args.dataset == "compare":
        console.print(compare(args.a, args.b))
        return 0
    items = select_items(_bench_items(args), tags=args.tags.split(",") if args.tags else None, limit=args.limit,
                         shard=args.shard)  # fmt: skip
    from milr.bench.distributed import BenchSetup

    eval_critic, context = args.eval_critic, None
    if args.dataset == "t2i":
        context = {"category": items[0].tag if items else args.category}
        eval_critic = eval_critic or "t2i_compbench"  # the category's own metric (BLIP-VQA, CLIP, spatial)
    elif args.dataset == "wise":
        context = {"explanations": {it.prompt: it.extra["explanation"] for it in items}}
        eval_critic = eval_critic or "wise"  # WiScore from the GPT-4o judge
    setup = BenchSetup(args.model, args.critic, eval_critic, _config_from_args(args), context=context)
    if args.ray:
        from milr.bench.distributed import run_bench_ray

        run_bench_ray(items, setup, args.method, args.out, n=args.n, samples=args.samples, curve=args.curve,
                      address=args.ray, workers=args.workers, batch=args.batch)  # fmt: skip
    else:
        from milr.bench.runner import BenchSpec, run_bench

        mug, config, reward, evaluate = setup.build()
        spec = BenchSpec(args.method, config, args.n)
        run_bench(items, mug, spec, reward, evaluate, args.out, samples=args.samples, curve=args.curve,
                  batch=args.batch)  # fmt: skip
    summary = write_summary(args.out)
    console.print(f"overall {summary['overall']:.3f} over {summary['records']} records; {args.out}/summary.md")
    return 0


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML or JSON file with MILRConfig fields")
    p.add_argument("--steps", type=int)
    p.add_argument("--strategy", choices=["joint", "alt", "t2v"])
    p.add_argument("--optimize", help="text,image (default both)")
    p.add_argument("--lr", type=float)
    p.add_argument("--threshold", type=float)
    p.add_argument("--cfg", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--select", choices=["best", "last"])
    p.add_argument("--device")


def _add_bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="benchmark sweeps (resumable) and comparisons")
    kinds = bench.add_subparsers(dest="dataset", required=True)
    for name, help_ in (("geneval", "GenEval"), ("t2i", "T2I-CompBench"), ("wise", "WISE"), ("shapes", "ShapesEval")):
        p = kinds.add_parser(name, help=help_)
        if name == "geneval":
            p.add_argument("--metadata", required=True, help="GenEval evaluation_metadata.jsonl")
        elif name == "t2i":
            p.add_argument("--prompts", required=True, help="T2I-CompBench {category}_val.txt")
            p.add_argument("--category")
        elif name == "wise":
            p.add_argument("--data", required=True, help="WISE data/*.json (not shipped: no licence)")
        else:
            p.add_argument("--per-tag", type=int, default=50)
        p.add_argument("--method", choices=["baseline", "milr", "best-of-n"], default="milr")
        p.add_argument("--n", type=int, help="best-of-N budget (default steps + 1)")
        p.add_argument("--model", default="shapes")
        p.add_argument("--critic", default="shapes", help="reward critic(s), NAME[:WEIGHT],...")
        p.add_argument("--eval-critic", help="evaluation critic(s) (default: the reward critic; "
                       "t2i: t2i_compbench, the category's metric; wise: wise, WiScore)")  # fmt: skip
        p.add_argument("--out", required=True)
        p.add_argument("--limit", type=int)
        p.add_argument("--tags", help="comma-separated tags/categories")
        p.add_argument("--samples", type=int, default=1)
        p.add_argument("--shard", help="i/n: run every n-th prompt from i")
        p.add_argument("--curve", action="store_true", help="evaluate every round (scaling curve)")
        p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run prompts as Ray tasks (pip install 'milr[ray]'); no ADDRESS: a local Ray")  # fmt: skip
        p.add_argument("--workers", type=int, help="Ray workers (default: one per GPU, else one per CPU)")
        p.add_argument("--batch", type=_positive_int, default=DEFAULT_BATCH,
                       help=f"runs per decode (best-of-n: images per decode; default {DEFAULT_BATCH})")  # fmt: skip
        _add_config_flags(p)
        p.set_defaults(func=cmd_bench)
    cmp_ = kinds.add_parser("compare", help="two result folders side by side")
    cmp_.add_argument("a")
    cmp_.add_argument("b")
    cmp_.set_defaults(func=cmd_bench)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="milr", description="Test-time latent reasoning for image generation.")
    parser.add_argument("--json-logs", action="store_true", help="log JSON lines (default: only when not a TTY)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run MILR on one prompt or a batch of prompts")
    run.add_argument("prompt", nargs="*", help="one or more prompts")
    run.add_argument("--prompts", help="text file with one prompt per line (added to the prompts given)")
    run.add_argument(
        "--batch",
        type=_positive_int,
        default=DEFAULT_BATCH,
        help=f"runs that share each decode (default {DEFAULT_BATCH}); a stopped run's slot is refilled",
    )
    run.add_argument("--model", default="shapes", help="'shapes' (packaged), 'tiny' (random), hub id or folder")
    run.add_argument("--critic", default="shapes", help=f"NAME[:WEIGHT],... from {', '.join(CRITICS)}")
    _add_config_flags(run)
    run.add_argument("--name", help="run name (sanitised) instead of the generated id")
    run.add_argument("--out", default="traces", help="folder for trace folders (default: traces/)")
    run.set_defaults(func=cmd_run)

    resume = sub.add_parser("resume", help="continue killed runs from their last finished round")
    resume.add_argument("run_dir", nargs="+", help="one or more run folders (of one parent folder)")
    resume.add_argument("--batch", type=_positive_int, default=DEFAULT_BATCH, help="runs that share each decode")
    resume.add_argument("--model", help="model to load (default: the one in run.json)")
    resume.add_argument("--critic", help="critics (default: the ones in run.json)")
    resume.set_defaults(func=cmd_resume)

    traces = sub.add_parser("traces", help="list, show or report traces")
    traces.add_argument("action", choices=["list", "show", "report"])
    traces.add_argument("path", nargs="?", help="folder of runs (list) or one run folder (show, report)")
    traces.set_defaults(func=cmd_traces)
    _add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(json=True if args.json_logs else None)
    try:
        return args.func(args)
    except (ConfigError, ValueError, FileNotFoundError, OSError) as err:
        console.print(f"[red]error:[/] {err}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

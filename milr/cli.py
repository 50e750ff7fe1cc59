"""The `milr` command: run, resume, traces, bench.

`milr run "PROMPT"` uses the packaged ShapesWorld model and its exact oracle unless told otherwise,
so it works offline on any machine. Critics are chosen by name (`--critic gpt4o:0.5,detector:0.5`);
the name → constructor table in `milr.orchestrator.registry` is the only registry milr has.

Failures: an expected one (bad value, missing file, unknown critic, ...) prints one line naming the
cause and the fix and exits 2; anything else prints one line and exits 1 (`--debug` shows the
traceback); Ctrl-C says how to resume and exits 130. Text that comes from users or models (prompts,
reasoning, run names, critic errors) reaches the terminal only as `rich.text.Text` passed through
`terminal_text`: never parsed as markup, control characters shown as visible escapes.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import traceback
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from milr.config import ConfigError, MILRConfig
from milr.log import configure_logging
from milr.orchestrator.registry import CRITICS, JUDGES, build_critics, build_model, parse_critic_list

console = Console(stderr=True)  # progress and diagnostics
stdout = Console()  # results: what a run returned, trace listings, benchmark summaries
DEFAULT_BATCH = 16  # runs per decode: batching pays on a CPU too (8x images/s at 16 on ShapesWorld)
# Failures the user can fix: one line with the cause (and the fix, which the messages carry), exit 2.
# What a user can fix: bad values and files (a critic that cannot work is a ValueError too), missing
# weights or extras.
EXPECTED = (ConfigError, ValueError, OSError, ImportError)
EXIT_EXPECTED, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 2, 1, 130


def _safe(text: object, *, newlines: bool = False) -> str:
    """User or model text made safe for the terminal (see `milr.traces.views.terminal_text`).
    Imported here: the traces package loads torch, and `milr --help` must not."""
    from milr.traces.views import terminal_text

    return terminal_text(text, newlines=newlines)


def _text(text: object, style: str = "") -> Text:
    return Text(_safe(text), style=style)


class Interrupted(Exception):
    """Ctrl-C during runs: the trace folders to resume, and how many runs had finished or not started."""

    def __init__(self, unfinished: list[str], finished: int, not_started: int):
        super().__init__(f"interrupted: {len(unfinished)} runs unfinished, {finished} finished, {not_started} queued")
        self.unfinished, self.finished, self.not_started = unfinished, finished, not_started


def _int_at_least(low: int):
    """An argparse type: an integer >= `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    return parse


_positive_int, _nonnegative_int = _int_at_least(1), _int_at_least(0)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
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


def _judge_options(args, *critic_texts: str | None) -> dict | None:
    """`--judge-*` as constructor keywords of the OpenAI-compatible judges (registry `context["judge"]`);
    an option given while no such judge is named is an error rather than silently ignored."""
    options = {
        "model": args.judge_model,
        "base_url": args.judge_base_url,
        "timeout": args.judge_timeout,
        "max_retries": args.judge_retries,
        "deadline": args.judge_deadline,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if not options:
        return None
    named = {name for text in critic_texts if text for name, _ in parse_critic_list(text)}
    if not named & set(JUDGES):
        flags = ", ".join("--judge-" + ("retries" if k == "max_retries" else k.replace("_", "-")) for k in options)
        raise ValueError(
            f"{flags} set the OpenAI-compatible judges ({', '.join(JUDGES)}), but none is among the critics "
            f"({', '.join(sorted(named))}); name one, e.g. --critic gpt4o, or drop the option"
        )
    return options


def _progress_table(rows: list[dict], title: str) -> Table:
    """One row per finished round (a single run) or per run with its latest round (a batch)."""
    batch = len({ev["run_id"] for ev in rows}) > 1
    table = Table(title=_text(title), title_justify="left")
    for col in (("run",) if batch else ()) + ("round", "score", "critics", "reasoning"):
        table.add_column(col, overflow="fold")
    if batch:
        rows = list({ev["run_id"]: ev for ev in rows}.values())
    for ev in rows:
        score = "-" if ev["score"] is None else f"{ev['score']:.3f}"
        critics = ", ".join(f"{k}={'-' if v is None else f'{v:.2f}'}" for k, v in ev["critics"].items())
        cells = [str(ev["round"]), score, critics, ev["reasoning"][:80]]
        table.add_row(*map(_text, [ev["run_id"]] if batch else []), *map(_text, cells))
    return table


def _drive(events, title: str, total: int) -> list:
    """Show the events of `total` runs live; print what each run returned. Ctrl-C becomes
    `Interrupted` with the trace folders of the runs that started and did not finish."""
    rows: list[dict] = []
    results = []
    unfinished: dict[str, str] = {}  # run_id -> trace folder, from `run_start` until `done`
    started: set[str] = set()
    live = Live(_progress_table(rows, title), console=console, refresh_per_second=4, transient=False)
    try:
        with contextlib.closing(events), live:  # closing: an interrupted graph stream releases its run folders
            for ev in events:
                if ev["event"] == "run_start":
                    unfinished[ev["run_id"]] = ev["trace_dir"]
                    started.add(ev["run_id"])
                    first = ev["from_round"]
                    what = "started" if not first else f"resumed at round {first}"
                    live.console.print(_text(f"run {ev['run_id']} {what}: {ev['trace_dir']}"), soft_wrap=True)
                elif ev["event"] == "round_start":
                    live.update(_progress_table(rows, f"{title} - {ev['run_id']} round {ev['round']} ..."))
                elif ev["event"] == "round_end":
                    rows.append(ev)
                    live.update(_progress_table(rows, title))
                elif ev["event"] == "done":
                    unfinished.pop(ev["run_id"], None)
                    results.append(ev["result"])
    except KeyboardInterrupt:
        raise Interrupted(list(unfinished.values()), len(started) - len(unfinished), total - len(started)) from None
    finally:
        if not console.is_terminal:  # off a terminal, rich leaves the live table's last line unterminated
            console.line()
    for result in results:
        score = "-" if result.score is None else f"{result.score:.3f}"
        stdout.print(
            Text.assemble(
                ("done", "bold"),
                _safe(
                    f": {result.stop_reason}, returned round {result.final_round} "
                    f"(score {score}), {len(result.rounds)} rounds in {result.seconds:.1f}s"
                ),
            ),
            soft_wrap=True,
        )
        stdout.print(_text(f"trace: {result.trace_dir}  report: {result.trace_dir / 'report.html'}"), soft_wrap=True)
    return results


def _unscored(results: list) -> int:
    """Say which runs no critic scored in any round (every verdict abstained: a missing key, a dead
    server); the exit status, so that such a run never passes for a success."""
    failed = [r for r in results if r.rounds and all(rec.score is None for rec in r.rounds)]
    for result in failed:
        errors = [c.error for rec in result.rounds for c in rec.critiques if c.error]
        why = f" (first error: {errors[0]})" if errors else ""
        _error(
            f"run {result.trace_dir.name}: no critic scored any of its {len(result.rounds)} rounds{why}; "
            "fix the critic (API key, --judge-base-url, weights) and run again"
        )
    return EXIT_EXPECTED if failed else 0


def _prompts_from_args(args) -> list[str]:
    prompts = list(args.prompt)
    if args.prompts:
        path = Path(args.prompts)
        if not path.is_file():
            raise FileNotFoundError(f"--prompts file {path.name!r} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"--prompts file {path.name!r} is not UTF-8 text; save it as UTF-8") from None
        prompts += [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise ValueError("give a prompt, several prompts, or --prompts FILE (one prompt per line)")
    if args.name and len(prompts) > 1:
        raise ValueError("--name names one run; with several prompts the run ids are generated")
    return prompts


def cmd_run(args) -> int:
    from milr.orchestrator import MILR

    prompts = _prompts_from_args(args)
    config = _config_from_args(args)
    parse_critic_list(args.critic)  # an unknown critic fails before the model loads
    judge = _judge_options(args, args.critic)
    mug = build_model(args.model, config)
    config = config.with_recommended(mug.recommended)
    critics, weights = build_critics(args.critic, mug, context={"judge": judge})
    milr = MILR(mug, critics, config, weights=weights if len(critics) > 1 else None, out=args.out, checkpoint=True,
                max_batch=args.batch)  # fmt: skip
    title = f"milr: {prompts[0]}" if len(prompts) == 1 else f"milr: {len(prompts)} prompts, batch {args.batch}"
    names = [args.name] if args.name else None
    return _unscored(_drive(milr.stream_batch(prompts, names=names), title, len(prompts)))


def cmd_resume(args) -> int:
    from milr.orchestrator import MILR
    from milr.traces import Trace

    first = Trace.load(args.run_dir[0])
    config = MILRConfig(**first.run.config)
    critics_text = args.critic or ",".join(f"{c['name']}:{c['weight']}" for c in first.run.critics)
    judge = _judge_options(args, critics_text)
    mug = build_model(args.model or first.run.model, config)
    critics, weights = build_critics(critics_text, mug, context={"judge": judge})
    milr = MILR(mug, critics, config, weights=weights if len(critics) > 1 else None,
                out=Path(args.run_dir[0]).parent, max_batch=args.batch)  # fmt: skip
    title = f"milr resume: {first.run.prompt}" if len(args.run_dir) == 1 else f"milr resume: {len(args.run_dir)} runs"
    return _unscored(_drive(milr.stream_resume(*args.run_dir), title, len(args.run_dir)))  # Ctrl-C: run it again


# --------------------------------------------------------------------------- traces
def cmd_traces(args) -> int:
    from milr.traces import Trace, list_table, show, write_report

    if args.action == "list":
        stdout.print(list_table(args.path or "traces"))
        return 0
    if args.path is None:
        raise ValueError(f"name the run folder: milr traces {args.action} <out>/<run_id>")
    if args.action == "show":
        show(Trace.load(args.path), stdout)
    elif args.action == "report":
        stdout.print(_text(f"report: {write_report(args.path)}"), soft_wrap=True)
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
        stdout.print(Text(_safe(compare(args.a, args.b), newlines=True)))
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
    config = _config_from_args(args)
    judge = _judge_options(args, args.critic, eval_critic)
    if judge:
        context = {**(context or {}), "judge": judge}
    setup = BenchSetup(args.model, args.critic, eval_critic, config, context=context)
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
    overall = "-" if summary["overall"] is None else f"{summary['overall']:.3f}"
    stdout.print(_text(f"overall {overall} over {summary['records']} records; {args.out}/summary.md"), soft_wrap=True)
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
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when available, else cpu)")


def _add_judge_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(f"OpenAI-compatible judges ({', '.join(JUDGES)})")
    g.add_argument("--judge-model", help="model the server is asked for (default: the critic's, e.g. gpt-4o)")
    g.add_argument("--judge-base-url", help="another OpenAI-compatible server, e.g. http://localhost:8000/v1")
    g.add_argument("--judge-timeout", type=_positive_seconds, help="seconds per request (default 60; unified 120)")
    g.add_argument("--judge-retries", type=_nonnegative_int, help="retries on 429/5xx/connection errors (default 2)")
    g.add_argument("--judge-deadline", type=_positive_seconds,
                   help="seconds for a whole judge call, retries included; past it the judge abstains")  # fmt: skip


def _add_debug_flag(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand that is not given --debug leaves the top-level value alone, so
    # `milr --debug run ...` and `milr run ... --debug` both work.
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of a failure")  # fmt: skip


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
        _add_judge_flags(p)
        _add_debug_flag(p)
        p.set_defaults(func=cmd_bench)
    cmp_ = kinds.add_parser("compare", help="two result folders side by side")
    cmp_.add_argument("a")
    cmp_.add_argument("b")
    _add_debug_flag(cmp_)
    cmp_.set_defaults(func=cmd_bench)
    _add_debug_flag(bench)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="milr", description="Test-time latent reasoning for image generation.")
    parser.add_argument("--json-logs", action="store_true", help="log JSON lines (default: only when not a TTY)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
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
    _add_judge_flags(run)
    run.add_argument("--name", help="run name (sanitised) instead of the generated id")
    run.add_argument("--out", default="traces", help="folder for trace folders (default: traces/)")
    _add_debug_flag(run)
    run.set_defaults(func=cmd_run)

    resume = sub.add_parser("resume", help="continue killed runs from their last finished round")
    resume.add_argument("run_dir", nargs="+", help="one or more run folders (of one parent folder)")
    resume.add_argument("--batch", type=_positive_int, default=DEFAULT_BATCH, help="runs that share each decode")
    resume.add_argument("--model", help="model to load (default: the one in run.json)")
    resume.add_argument("--critic", help="critics (default: the ones in run.json)")
    _add_judge_flags(resume)
    _add_debug_flag(resume)
    resume.set_defaults(func=cmd_resume)

    traces = sub.add_parser("traces", help="list, show or report traces")
    traces.add_argument("action", choices=["list", "show", "report"])
    traces.add_argument("path", nargs="?", help="folder of runs (list) or one run folder (show, report)")
    _add_debug_flag(traces)
    traces.set_defaults(func=cmd_traces)
    _add_bench_parser(sub)
    return parser


def _one_line(err: BaseException, limit: int | None = None) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and err.strerror:  # raised by the OS, not by milr
        text = f"{err.strerror}: {str(err.filename)!r}; check the path and its permissions"
    return text if limit is None or len(text) <= limit else text[:limit] + "..."


def _error(message: str) -> None:
    console.print(Text.assemble(("error: ", "bold red"), _safe(message)), soft_wrap=True)  # one line, never wrapped


def _note(message: str) -> None:
    console.print(Text(_safe(message), style="yellow"), soft_wrap=True)


def _interrupted(args, err: Interrupted | None) -> str:
    """What Ctrl-C left, and the command that continues it."""
    if args.func is cmd_bench:
        return "interrupted: finished records are kept; run the same `milr bench` command again to continue"
    if args.func is cmd_resume:
        return f"interrupted: finished rounds are on disk; continue with: milr resume {' '.join(args.run_dir)}"
    if args.func is not cmd_run:
        return "interrupted"
    if err is None or not (err.unfinished or err.finished):
        return "interrupted before any run started; nothing to resume"
    parts = [f"{err.finished} runs finished"] if err.finished else []
    if err.unfinished:
        parts.append(f"finished rounds are on disk; resume with: milr resume {' '.join(err.unfinished)}")
    if err.not_started:
        n = err.not_started
        parts.append(f"{n} queued prompt{'s' * (n != 1)} had not started: run {'them' if n != 1 else 'it'} again")
    return "interrupted: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """The `milr` command. Returns the exit status: 0, 2 (a failure the user can fix, one line),
    1 (an unexpected failure: one line, the traceback with --debug), 130 (Ctrl-C)."""
    args = build_parser().parse_args(argv)
    configure_logging(json=True if args.json_logs else None)
    try:
        return args.func(args)
    except Interrupted as err:
        _note(_interrupted(args, err))
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _note(_interrupted(args, None))
        return EXIT_INTERRUPTED
    except EXPECTED as err:
        if args.debug:
            traceback.print_exc()
        _error(_one_line(err))
        return EXIT_EXPECTED
    except Exception as err:
        if args.debug:
            traceback.print_exc()
        hint = "" if args.debug else "; run with --debug for the traceback"
        _error(f"unexpected {type(err).__name__}: {_one_line(err, 300)} (a bug or an unhandled case{hint})")
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())

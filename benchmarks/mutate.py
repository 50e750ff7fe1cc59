"""Mutation testing of milr's core (issue 15): plant small bugs one at a time and see whether the
tests notice.

    make mutate                                    # = nice python benchmarks/mutate.py
    python benchmarks/mutate.py [--modules milr/traces/files.py,milr/nodes/] [--cap 40] [--out PATH]
    python benchmarks/mutate.py --list             # the mutants, without running anything

Each mutant is one change to one module's source: a comparison swapped (`<` ↔ `<=`, `==` ↔ `!=`,
`in` ↔ `not in`, ...), `and` ↔ `or`, an arithmetic operator swapped, a number moved by one, `True`
↔ `False`, a `not` dropped, a returned value replaced by None, or a statement (call, assignment,
raise, ...) deleted. Docstrings, type annotations, strings and logging calls are not mutated.

The work happens in a copy of the repository (`--work`, default a fresh temporary folder; never the
working tree, which others run tests in). For each mutant the module is rewritten in the copy and
the module's fast test files run there (`-x`, with a timeout of 3x the unmutated run + 15 s); the
mutant is killed when a test fails, errors or times out, and survives when all pass. To pay the
torch/transformers import once, a parent process imports the third-party libraries the tests use
(never milr) and forks one child per mutant; the child imports milr from the copy (checked: each
run asserts `milr.__file__` lies in the copy) and writes no bytecode, so no stale .pyc is ever read.

The modules are the ones issue 15 names (`milr/nodes/` is one module of four files). More mutants
than `--cap` in a module: a deterministic sample (sorted by a hash of each mutant), so a rerun draws
the same ones; a full run of every mutant would take hours on 2 cores. Survivors known to be
equivalent (no test can tell them apart: the behaviour is the same) are listed with the reason in
benchmarks/mutation_equivalent.json and counted apart. Writes benchmarks/results/mutation.json:
per module the mutants, killed, survived, equivalent and kill rate, and every survivor (module,
line, code, mutation). Tests written to kill survivors live in tests/mutation_kills/.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import hashlib
import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from provenance import Measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EQUIVALENT = ROOT / "benchmarks" / "mutation_equivalent.json"
MARKER = ".milr-mutate"
WRONG_MILR = 97  # a child's exit code when it imported the working tree's milr (pytest uses 0-5)
SKIP_ANYWHERE = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
SKIP_AT_ROOT = {".venv", ".git", "traces", "results", "mutants", ".langgraph_api"}  # big, or others' output


def copy_ignore(folder: str, names: list[str]) -> set[str]:
    """What `make_copy` leaves out: caches anywhere, and the repository root's environment and outputs."""
    at_root = Path(folder).resolve() == ROOT
    return {n for n in names if n in SKIP_ANYWHERE or n.endswith(".pyc") or (at_root and n in SKIP_AT_ROOT)}


# Each core module with the fast test files that exercise it, most specific first (-x stops at the
# first failure, so a killed mutant usually costs only the first file).
NODE_TESTS = [
    "tests/orchestrator/test_edges.py",
    "tests/orchestrator/test_loop.py",
    "tests/orchestrator/test_human.py",  # the pause at a question: pending files, re-runs of critique
    # One SIGKILL resume (8 s); the file's other two repeat it with a checkpointer and a batch.
    "tests/orchestrator/test_resume.py::test_sigkilled_run_resumes_to_the_same_trace[no-checkpointer]",
]
MODULES: dict[str, list[str]] = {
    "milr/mug/latents.py": ["tests/mug/test_latents.py", "tests/orchestrator/test_edges.py"],
    "milr/nodes/context.py": NODE_TESTS,
    "milr/nodes/critique.py": NODE_TESTS,
    "milr/nodes/generate.py": NODE_TESTS,
    "milr/nodes/latent_update.py": NODE_TESTS,
    "milr/critics/mixer.py": [
        "tests/critics/test_mixer.py",
        "tests/critics/test_score_many.py",
        "tests/faults/test_broken_critics.py",
        "tests/critics/test_human.py",
        "tests/critics/test_check.py",
        "tests/orchestrator/test_human.py",
    ],
    "milr/critics/geneval.py": [
        "tests/critics/test_geneval_rules.py",
        "tests/critics/test_check.py",
        "tests/critics/test_vision_critics.py",
    ],
    "milr/traces/writer.py": [
        "tests/traces/test_writer.py",
        "tests/traces/test_durability.py",
        "tests/faults/test_trace_files.py",
        "tests/traces/test_reader.py",
        "tests/faults/test_secrets.py",
    ],
    "milr/traces/files.py": [
        "tests/faults/test_trace_files.py",
        "tests/traces/test_durability.py",
        "tests/traces/test_writer.py",
    ],
    "milr/traces/redaction.py": ["tests/traces/test_writer.py", "tests/faults/test_secrets.py"],
}
# The modules as issue 15 lists them: milr/nodes/ is one, of four files; the cap applies per group.
GROUPS: dict[str, list[str]] = {
    "milr/mug/latents.py": ["milr/mug/latents.py"],
    "milr/nodes/": [m for m in MODULES if m.startswith("milr/nodes/")],
    **{m: [m] for m in MODULES if m.startswith(("milr/critics/", "milr/traces/"))},
}
# Extra test files that kill survivors (tests/mutation_kills/test_<module stem>*.py) join the lists of
# their module's group.
KILLS = "tests/mutation_kills"

COMPARE_SWAPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
BINOP_SWAPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
}
SYMBOLS = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.And: "and",
    ast.Or: "or",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitOr: "|",
    ast.BitAnd: "&",
}
LOGGERS = {"log", "logger", "logging", "warnings"}


@dataclass(frozen=True)
class Mutant:
    module: str
    line: int
    function: str
    code: str  # the original source line, stripped
    mutation: str  # what changed, e.g. "`>=` → `>`"
    start: tuple[int, int]  # (line, column) of the replaced source span
    end: tuple[int, int]
    replacement: str

    @property
    def key(self) -> str:
        """Stable across edits elsewhere in the module (no line number); the replacement tells apart
        the same swap at two places of one line."""
        return f"{self.module}|{self.function}|{self.code}|{self.mutation}|{self.replacement}"


# ----------------------------------------------------------------------------- making mutants
class _Finder(ast.NodeVisitor):
    """Walks one module and proposes mutants (spans of the source with their replacements)."""

    def __init__(self, module: str, source: str):
        self.module, self.lines, self.found = module, source.splitlines(), []
        self.scope: list[str] = []

    def add(self, node: ast.AST, mutation: str, replacement: str) -> None:
        code = self.lines[node.lineno - 1].strip()
        self.found.append(
            Mutant(
                self.module,
                node.lineno,
                ".".join(self.scope) or "<module>",
                code,
                mutation,
                (node.lineno, node.col_offset),
                (node.end_lineno, node.end_col_offset),
                replacement,
            )
        )

    # scopes, and what is never mutated
    def _scoped(self, node) -> None:
        self.scope.append(node.name)
        body = node.body[1:] if ast.get_docstring(node) is not None else node.body
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)
        for default in getattr(getattr(node, "args", None), "defaults", []):
            self.visit(default)
        for stmt in body:
            self.visit(stmt)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Module(self, node: ast.Module) -> None:
        for stmt in node.body[1:] if ast.get_docstring(node) is not None else node.body:
            if isinstance(stmt, ast.ImportFrom | ast.Import):
                continue
            if isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in stmt.targets):
                continue
            self.visit(stmt)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:  # the annotation is not code
        if node.value is not None:
            self.visit(node.value)
            if self.scope:
                self.add(node, "delete statement", "pass")

    def visit_arg(self, node: ast.arg) -> None:
        return

    # statements
    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant):  # a bare string: documentation
            return
        if _is_logging(node.value):
            return
        self.add(node, "delete statement", "pass")
        self.generic_visit(node)

    def _deletable(self, node) -> None:
        if self.scope:  # a module-level name deleted only raises NameError at import: not a test of the tests
            self.add(node, "delete statement", "pass")
        self.generic_visit(node)

    visit_Assign = visit_AugAssign = visit_Raise = visit_Assert = visit_Delete = _deletable

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            self.add(node, "return None", "return None")
        self.generic_visit(node)

    # expressions
    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            swap = COMPARE_SWAPS.get(type(op))
            if swap:
                ops = [*node.ops[:i], swap(), *node.ops[i + 1 :]]
                new = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
                self.add(node, f"`{_op(op)}` → `{_op(swap())}`", ast.unparse(new))
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self.add(node, f"`{_op(node.op)}` → `{_op(other)}`", ast.unparse(ast.BoolOp(op=other, values=node.values)))
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        swap = BINOP_SWAPS.get(type(node.op))
        if swap and not _is_string_format(node):
            new = ast.BinOp(left=node.left, op=swap(), right=node.right)
            self.add(node, f"`{_op(node.op)}` → `{_op(swap())}`", ast.unparse(new))
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self.add(node, "drop `not`", ast.unparse(node.operand))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self.add(node, f"{value} → {not value}", repr(not value))
        elif isinstance(value, int | float) and not isinstance(value, complex):
            self.add(node, f"{value!r} → {value + 1!r}", repr(value + 1))

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:  # f-strings: messages, not logic
        return

    def visit_Call(self, node: ast.Call) -> None:
        if _is_logging(node):
            return
        self.generic_visit(node)


def _op(op: ast.AST) -> str:
    return SYMBOLS[type(op)]


def _is_logging(node: ast.AST) -> bool:
    """`log.info(...)`, `logger.warning(...)`, `warnings.warn(...)`: output, not behaviour under test."""
    func = node.func if isinstance(node, ast.Call) else None
    while isinstance(func, ast.Attribute):
        func = func.value
    return isinstance(func, ast.Name) and func.id in LOGGERS


def _is_string_format(node: ast.BinOp) -> bool:
    return isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)


def find_mutants(module: str, source: str) -> list[Mutant]:
    finder = _Finder(module, source)
    finder.visit(ast.parse(source))
    seen, out = set(), []
    for m in finder.found:  # two rules can propose the same text (e.g. nested spans): keep one
        if (m.start, m.end, m.replacement) not in seen and _compiles(apply(source, m)):
            seen.add((m.start, m.end, m.replacement))
            out.append(m)
    return out


def apply(source: str, mutant: Mutant) -> str:
    """The source with the mutant's span replaced."""
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(pos: tuple[int, int]) -> int:  # ast columns count UTF-8 bytes
        line = lines[pos[0] - 1]
        return offsets[pos[0] - 1] + len(line.encode()[: pos[1]].decode())

    return source[: at(mutant.start)] + mutant.replacement + source[at(mutant.end) :]


def _compiles(source: str) -> bool:
    try:
        compile(source, "<mutant>", "exec")
    except SyntaxError:
        return False
    return True


def sample(mutants: list[Mutant], cap: int, offset: int = 0) -> list[Mutant]:
    """At most `cap` mutants, chosen by a hash of each one's key (the same ones on every run);
    `offset` skips the first ones of that order: a fresh sample, disjoint from the default one."""
    if len(mutants) <= cap and not offset:
        return mutants
    chosen = sorted(mutants, key=lambda m: hashlib.sha256(m.key.encode()).hexdigest())[offset : offset + cap]
    return sorted(chosen, key=lambda m: (m.start, m.mutation))


# ----------------------------------------------------------------------------- running the tests
def make_copy(folder: Path) -> Path:
    """A fresh copy of the repository's tree (no .venv, no .git, no caches) to mutate, at folder/repo,
    beside a link to the project's shared folder (the tests read ../shared: without it they skip)."""
    folder = folder.resolve()
    if folder == ROOT or folder.is_relative_to(ROOT) or ROOT.is_relative_to(folder):
        raise SystemExit(f"--work: {folder} overlaps the repository; give a folder outside it")
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).is_file():
            raise SystemExit(f"--work: {folder} is not empty and was not made by this script; give a new folder")
        shutil.rmtree(folder)  # a copy from an earlier run: start again from the working tree
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by benchmarks/mutate.py\n")
    work = folder / "repo"
    shutil.copytree(ROOT, work, ignore=copy_ignore, symlinks=True)
    if (ROOT.parent / "shared").is_dir():
        (folder / "shared").symlink_to(ROOT.parent / "shared")
    return work


def preload(names_file: Path) -> None:
    """Import in this (parent) process every third-party module an unmutated run imported, so each
    forked child starts warm; milr itself stays unimported (the children import it from the copy)."""
    for name in json.loads(names_file.read_text()):
        with contextlib.suppress(Exception), open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            importlib.import_module(name)
    if "milr" in sys.modules:
        raise SystemExit("a preloaded module imported milr: the children would test the working tree's copy")


def unmutated_failed(work: Path, tests: list[str], code: int | str) -> None:
    tail = (work / ".mutate.log").read_text()[-3000:]
    raise SystemExit(f"{tail}\nthe unmutated tests fail in the copy (exit {code}): {' '.join(tests)}")


def _third_party(name: str) -> bool:
    top = name.split(".")[0]
    return top not in {"milr", "tests", "conftest", "__main__"} and not top.startswith("__")


def run_child(
    work: Path, tests: list[str], timeout: float, record_modules: Path | None = None, log: Path | None = None
) -> int | str:
    """Run pytest on `tests` in a forked child inside the copy: its exit code, or "timeout". Its
    output goes to `log` (the unmutated runs, to say why they failed) or nowhere."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            code = _child(work, tests, record_modules, log)
        finally:
            os._exit(code)
    with contextlib.suppress(OSError):  # its own group, set on both sides (no race with a kill)
        os.setpgid(pid, pid)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)  # its subprocesses too
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.05)


def _child(work: Path, tests: list[str], record_modules: Path | None, log: Path | None) -> int:
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    out = os.open(log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.chdir(work)
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # subprocesses of the tests too
    os.environ["PYTHONPATH"] = str(work)
    sys.dont_write_bytecode = True
    sys.path[:] = [str(work), *(p for p in sys.path if Path(p).resolve() != ROOT)]
    import pytest

    import milr

    if not Path(milr.__file__).resolve().is_relative_to(work.resolve()):
        return WRONG_MILR  # the working tree's milr, not the copy's: a wrong result would follow
    code = pytest.main([*tests, "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts="])
    if record_modules is not None:
        record_modules.write_text(json.dumps(sorted(n for n in sys.modules if _third_party(n))))
    return int(code)


def tests_for(module: str, work: Path) -> tuple[str, ...]:
    group = next(files for files in GROUPS.values() if module in files)  # its group's kills: one list
    stems = [Path(f).stem for f in group]
    kills = sorted(str(p.relative_to(work)) for stem in stems for p in (work / KILLS).glob(f"test_{stem}*.py"))
    return tuple(t for t in [*kills, *MODULES[module]] if (work / t.split("::")[0]).is_file())


@functools.cache
def unmutated_seconds(work: Path, tests: tuple[str, ...]) -> float:
    """Run the unmutated tests (they must pass), preload what they import, then time a warm run: what
    a surviving mutant's run costs. Once per test list (the four node modules share one)."""
    names = work / ".mutate_modules.json"
    code = run_child(work, list(tests), timeout=1200, record_modules=names, log=work / ".mutate.log")
    if code != 0:
        unmutated_failed(work, list(tests), code)
    preload(names)
    started = time.perf_counter()
    code = run_child(work, list(tests), timeout=1200, log=work / ".mutate.log")
    if code != 0:
        unmutated_failed(work, list(tests), code)
    return time.perf_counter() - started


def run_module(module: str, mutants: list[Mutant], work: Path, equivalent: dict[str, str]) -> dict:
    tests = tests_for(module, work)
    path = work / module
    original = path.read_text()
    baseline = unmutated_seconds(work, tests)
    timeout = 3 * baseline + 15
    outcomes = []
    try:
        for i, mutant in enumerate(mutants):
            path.write_text(apply(original, mutant))
            t = time.perf_counter()
            code = run_child(work, tests, timeout)
            if code == WRONG_MILR:
                raise SystemExit("a child imported the working tree's milr instead of the copy's")
            verdict = "survived" if code == 0 else "timeout" if code == "timeout" else "killed"
            if verdict == "survived" and mutant.key in equivalent:
                verdict = "equivalent"
            outcomes.append((mutant, verdict))
            took = time.perf_counter() - t
            line = f"line {mutant.line}: {mutant.mutation}: {mutant.code[:70]}"
            print(f"{module} [{i + 1}/{len(mutants)}] {verdict:10} {took:5.1f} s  {line}", file=sys.stderr, flush=True)
    finally:
        path.write_text(original)
    return module_summary(module, tests, baseline, outcomes, equivalent)


def module_summary(module, tests, baseline, outcomes, equivalent) -> dict:
    count = {v: sum(1 for _, o in outcomes if o == v) for v in COUNTS[1:]}
    count = {"mutants_run": len(outcomes), **count}
    return {
        "tests": tests,
        "unmutated_run_seconds": round(baseline, 1),
        **count,
        "kill_rate": kill_rate(count),
        "survivors": [_row(m) for m, o in outcomes if o == "survived"],
        "equivalent_mutants": [_row(m) | {"why": equivalent[m.key]} for m, o in outcomes if o == "equivalent"],
    }


def _row(m: Mutant) -> dict:
    return {"line": m.line, "function": m.function, "code": m.code, "mutation": m.mutation, "to": m.replacement}


def load_equivalent() -> dict[str, str]:
    rows = json.loads(EQUIVALENT.read_text()) if EQUIVALENT.is_file() else []
    return {f"{r['module']}|{r['function']}|{r['code']}|{r['mutation']}|{r['to']}": r["why"] for r in rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", default=",".join(GROUPS), help="comma-separated modules (milr/nodes/: all four)")
    ap.add_argument("--cap", type=int, default=40, help="mutants per module at most (deterministic sample)")
    ap.add_argument("--offset", type=int, default=0, help="skip this many of each module's sample order")
    ap.add_argument("--work", type=Path, default=None, help="a new folder for the copy (default: a temporary one)")
    ap.add_argument("--list", action="store_true", help="print the mutants and exit")
    ap.add_argument("--out", type=Path, default=RESULTS / "mutation.json")
    args = ap.parse_args(argv)
    groups = args.modules.split(",")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise SystemExit(f"--modules: {', '.join(unknown)} not mutated here; choose from {', '.join(GROUPS)}")
    found = {g: [m for f in GROUPS[g] for m in find_mutants(f, (ROOT / f).read_text())] for g in groups}
    chosen = {g: sample(found[g], args.cap, args.offset) for g in groups}
    if args.list:
        for mutants in chosen.values():
            for mutant in mutants:
                print(f"{mutant.module}:{mutant.line}  {mutant.mutation}  |  {mutant.code}")
        return 0
    equivalent = load_equivalent()
    with tempfile.TemporaryDirectory() as tmp, Measured() as measured:
        work = make_copy(args.work or Path(tmp) / "mutate")
        per_group = {}
        for g in groups:
            files = {}
            for f in GROUPS[g]:
                mine = [m for m in chosen[g] if m.module == f]
                if mine:
                    files[f] = {"mutants_found": sum(m.module == f for m in found[g])}
                    files[f] |= run_module(f, mine, work, equivalent)
            per_group[g] = group_summary(files, len(found[g]))
    result = summarize(per_group, args.cap, args.offset, measured)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: result[k] for k in ("kill_rate", "mutants_run", "survived")}, indent=2))
    return 0


COUNTS = ("mutants_run", "killed", "timeout", "survived", "equivalent")


def kill_rate(counts: dict) -> float | None:
    judged = counts["mutants_run"] - counts["equivalent"]
    return round((counts["killed"] + counts["timeout"]) / judged, 3) if judged else None


def group_summary(files: dict, found: int) -> dict:
    """A module's figures: the counts over its files, and each file's own (one file: just its own)."""
    if len(files) == 1:
        return next(iter(files.values()))
    counts = {k: sum(f[k] for f in files.values()) for k in COUNTS}
    return {"mutants_found": found, **counts, "kill_rate": kill_rate(counts), "files": files}


def summarize(per_group: dict, cap: int, offset: int, measured: Measured) -> dict:
    total = {k: sum(v[k] for v in per_group.values()) for k in COUNTS}
    return {
        "what": "mutation testing of milr's core (benchmarks/mutate.py): one planted change at a time, the "
        "module's fast tests run with -x; killed = a test failed or timed out",
        "kill_rate": kill_rate(total),
        "kill_rate_note": "(killed + timeout) / (mutants run - equivalent)",
        **total,
        "sampling": f"at most {cap} mutants per module (milr/nodes/ is one), the ones at {offset} to {offset + cap} "
        "in the order of a hash of each mutant (the same on every run); mutants_found says how many each module has",
        "not_mutated": "docstrings, type annotations, imports, __all__, strings and f-strings, logging calls",
        "modules": per_group,
        "provenance": measured.provenance("cpu"),
    }


if __name__ == "__main__":
    sys.exit(main())

"""What a speed figure was measured on, and beside what (issue 15): one helper every benchmark script
wraps its measurement in, so each speed JSON says how many torch threads ran, on which device, with
which torch and transformers, on how many CPUs, at what load, and which other processes used the CPU
meanwhile. This machine is shared: a figure measured beside other work is slower than the machine
can do, and only ratios measured side by side in one run compare like with like.

    with Measured() as measured:
        ...  # the timed work
    result["provenance"] = measured.provenance(device="cpu")

Other processes are read from Linux's /proc (names only: command lines may carry local paths). Two
views: `other_cores_used` is the whole machine's busy time minus this process's and its children's,
so processes that started and ended meanwhile count too; `other_processes` names the ones alive at
both ends that used over 5% of a core. Elsewhere than Linux the first is null and the second empty.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
import transformers

ROOT = Path(__file__).resolve().parents[1]
BUSY_SHARE = 0.05  # of one core: below it a process is idle enough not to name
PROC = Path("/proc")


def process_ticks() -> dict[int, tuple[str, int]]:
    """{pid: (command name, user + system clock ticks)} of every process now; {} without /proc."""
    out = {}
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended between the listing and the read
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))
    return out


def machine_busy_ticks() -> int | None:
    """Clock ticks all CPUs spent busy since boot (user, nice, system, irq, softirq; idle, iowait and
    time stolen by a hypervisor are not this machine's work); None without /proc/stat."""
    try:
        fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return user + nice + system + irq + softirq


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that were waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def others_meanwhile(before: dict, after: dict, seconds: float, me: int) -> list[dict]:
    """Processes other than `me` that used over BUSY_SHARE of a core between two `process_ticks`;
    one born meanwhile counts from zero."""
    tick = os.sysconf("SC_CLK_TCK")
    rows = []
    for pid, (name, ticks) in after.items():
        share = (ticks - before.get(pid, (name, 0))[1]) / tick / seconds
        if pid != me and share > BUSY_SHARE:
            rows.append({"pid": pid, "name": name, "cpu_share": round(share, 2)})
    return sorted(rows, key=lambda r: -r["cpu_share"])


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed from the repository root: `python benchmarks/x.py --flag v`. Paths inside
    the repository are made relative; others keep only their name, so no local path is written."""
    return shlex.join(["python", *(_portable(word) for word in (sys.argv if argv is None else argv))])


def _portable(word: str) -> str:
    key, sep, value = word.partition("=") if word.startswith("--") else ("", "", word)
    if not os.path.isabs(value):
        return word
    path = Path(value).resolve()
    shown = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else f"<outside>/{path.name}"
    return f"{key}{sep}{shown}"


def device_label(device: str) -> str:
    """The device as run: `cpu`, or `cuda (NVIDIA H200)`."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def environment(device: str = "cpu") -> dict:
    """The software and hardware a figure was measured with (threads as torch runs them now)."""
    return {
        "threads": torch.get_num_threads(),
        "device": device_label(device),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _loads(values) -> list[float]:
    return [round(x, 2) for x in values]


class Measured:
    """Wall time, load average and the CPU use of other processes around a block."""

    @classmethod
    def start(cls) -> Measured:
        """Begin measuring outside a `with` block; `stop` measures up to now, as often as called."""
        return cls().__enter__()

    def __enter__(self) -> Measured:
        self.load_before = os.getloadavg()
        self.ticks, self.busy, self.own = process_ticks(), machine_busy_ticks(), own_cpu_seconds()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Measure from the start to now; called again (a script saving as it goes), it measures anew."""
        self.seconds = time.perf_counter() - self.started
        own = own_cpu_seconds() - self.own
        busy = machine_busy_ticks()
        self.load_after = os.getloadavg()
        self.others = others_meanwhile(self.ticks, process_ticks(), self.seconds, os.getpid())
        self.other_cores = None
        if busy is not None and self.busy is not None:
            machine = (busy - self.busy) / os.sysconf("SC_CLK_TCK")
            self.other_cores = round(max(0.0, machine - own) / self.seconds, 2)

    def record(self) -> dict:
        """What ran beside the block: load before and after, other processes by name and in cores."""
        return {
            "seconds": round(self.seconds, 3),
            "loadavg_before": _loads(self.load_before),
            "loadavg_after": _loads(self.load_after),
            "other_cores_used": self.other_cores,
            "other_processes": self.others,
            "other_processes_ran": bool(self.others) or (self.other_cores or 0) > BUSY_SHARE,
        }

    def provenance(self, device: str = "cpu", argv: list[str] | None = None) -> dict:
        """The whole provenance block of a speed JSON: command, environment and what ran beside.
        `argv` (script path first) when `main(argv)` was called with arguments; else sys.argv."""
        return {"command": command_line(argv), **environment(device), **self.record()}


def save_result(result: dict, out: Path) -> None:
    """Print a benchmark's figures and save them as JSON at `out` (its folder made as needed)."""
    text = json.dumps(result, indent=2)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")

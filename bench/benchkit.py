"""Shared helpers for the bench scripts: timing, the machine header, markdown output."""

from __future__ import annotations

import os
import resource
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _cpu_seconds() -> tuple[float, float, float] | None:
    """(wall clock, CPU seconds busy on the whole machine, CPU seconds of this run's processes); None if not Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    # The run's own processes: this one and the children it has waited for (a bench's workers).
    own = sum(usage.ru_utime + usage.ru_stime
              for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))
    return (time.monotonic(), (user + nice + system + irq + softirq + steal) / ticks, own)


# Taken at import, before any work: the run's own CPU time is subtracted from the machine's.
_START = _cpu_seconds()


def contention() -> str:
    """How much CPU other processes took while this script ran: they skew the times."""
    end = _cpu_seconds()
    if _START is None or end is None:
        return "unknown (no /proc/stat)"
    wall = end[0] - _START[0]
    others = max(0.0, (end[1] - _START[1]) - (end[2] - _START[2]))
    share = others / max(wall * _cores(), 1e-9)
    return (f"other processes used {others:.0f} CPU-seconds during this {wall:.0f} s run "
            f"({100 * share:.0f}% of the cores); above a few % the times are unreliable")


def use_checkout() -> None:
    """Import livegen from this checkout: the scripts must run without installing it."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def set_threads(threads: int | None) -> None:
    """Fix the thread pools (torch's, and numpy's BLAS); None keeps the defaults (one per core).

    One thread is the fair choice on a machine that others are using: a
    parallel region waits for its slowest thread, so a pool that shares cores
    with another process stalls (Griffin-Lim measured 10-25x slower).
    """
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)
    try:  # numpy's BLAS too, so librosa's side gets the same limit
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass


def timed(fn, *args, **kwargs):
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def median(values) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------- the machine
def _cpuinfo() -> tuple[str, set[str]]:
    """CPU model name and feature flags (Linux); empty when unreadable."""
    name, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name == "unknown CPU":
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return name, flags


def _vector_units(flags: set[str]) -> str:
    # Worth stating: whether bf16 pays on a CPU depends on AVX-512 BF16 / AMX.
    if not flags:
        return "flags unknown"
    units = [unit for flag, unit in (("avx2", "AVX2"), ("avx512f", "AVX-512"),
                                     ("avx512_bf16", "AVX-512 BF16"), ("amx_tile", "AMX")) if flag in flags]
    missing = [unit for flag, unit in (("avx512f", "AVX-512"), ("amx_tile", "AMX")) if flag not in flags]
    text = ", ".join(units) or "no AVX2"
    return text + (f", no {'/'.join(missing)}" if missing else "")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def command_line() -> str:
    """How this script was started, with the interpreter relative to the repo when inside it."""
    python = Path(sys.executable)
    try:
        python_text = str(python.relative_to(REPO)) if python.is_absolute() else str(python)
    except ValueError:
        python_text = str(python)
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(REPO))
    except ValueError:
        script_text = sys.argv[0]
    return shlex.join([python_text, script_text, *sys.argv[1:]])


def machine_header(title: str, details: list[str]) -> str:
    """Markdown lines naming the machine, library versions and the command line."""
    import torch

    name, flags = _cpuinfo()
    versions = [f"torch {torch.__version__}"]
    for module in ("diffusers", "librosa", "numpy"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    gpu = ""
    if torch.cuda.is_available():
        gpu = f"; GPU: {torch.cuda.get_device_name(0)}"
    lines = [
        f"## {title}",
        "",
        f"- Machine: {name}, {_cores()} cores ({_vector_units(flags)}), "
        f"torch threads {torch.get_num_threads()}{gpu}",
        f"- Software: {', '.join(versions)}",
        f"- Contention: {contention()}",
        *[f"- {line}" for line in details],
        f"- Command: `{command_line()}`",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ markdown
def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(text: str, name: str) -> Path:
    """Print ``text`` and write it to bench/results/<name> (via a .tmp, so a crash leaves the old file)."""
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)
    print(f"\nwritten to {path.relative_to(REPO)}", file=sys.stderr)
    return path


def progress(message: str) -> None:
    """Progress goes to stderr so stdout is the table alone."""
    print(message, file=sys.stderr, flush=True)

"""Live engine bench: underflows, memory and trigger latency over a long run through JACK.

    .venv/bin/python bench/engine.py --minutes 10
    .venv/bin/python bench/engine.py --minutes 3 --busy 2 --busy-nice 0   # beside two busy jobs (also 19)

Starts its own JACK dummy server (48 kHz, 256-frame periods), then in a child
process plays a set with all four shipped genres loaded, the worker generating
flat out (auto launch every bar, so the buffers never stay full) on the same
two cores. It reports:

- xruns of the engine's JACK client (the server's log) and output underflows
  (PortAudio's flag) while the set plays, and the xruns before its first loop;
- the audio callback's time per block, on the wall and on its own CPU, as a share of the block;
- resident memory (PSS: shared pages split fairly) of engine + worker + audio process, at the
  start and the end of the run, and the peak;
- trigger latency with quantise off: from the trigger call to the first sample
  of the crossfade, plus the output stream's latency.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit  # noqa: E402

benchkit.use_checkout()

GENRES = ["techno", "house", "hiphop", "breaks"]
MEMORY_EVERY = 10.0  # seconds between memory samples


def busy_processes(count: int, nice: int) -> list[subprocess.Popen]:
    """``count`` processes spinning at ``nice``: the other jobs on a DJ's laptop."""
    return [subprocess.Popen([sys.executable, "-c", f"import os; os.nice({nice})\nwhile True: pass"])
            for _ in range(count)]


def play(minutes: float, out: Path, busy: int = 0, busy_nice: int = 0) -> None:
    """The measured set (runs in a child process started after the JACK server)."""
    import psutil

    from livegen.engine import Engine, EngineSettings, SoundCard
    from tests.jackserver import xrun_reports

    background = busy_processes(busy, busy_nice)
    engine = Engine(EngineSettings(genres=GENRES, bpm=124.0, auto_bars=1, seed=1, quantise="1", blocksize=256),
                    SoundCard(host_api="JACK", blocksize=256))
    started_at = time.monotonic()
    engine.start()
    engine.wait_until_playing(timeout=300)
    first_loop_seconds = time.monotonic() - started_at
    # Opening the JACK client while the worker loads costs an xrun or two, over silence: counted apart.
    xruns_before_play = xrun_reports(out / "jackd.log")
    underflows_before_play = engine.snapshot()["underflows"]  # in play: counted from the first loop
    block_time_at_play = engine.mixer.state.block_times()
    main = psutil.Process()

    def memory() -> list[float]:
        """PSS in MiB of engine, worker and audio process. Reading it walks each process's page
        tables (/proc/PID/smaps), which can delay a real-time thread: so only every MEMORY_EVERY s."""
        pids = (engine.worker_pid, engine.mixer.pid)
        processes = [main] + [psutil.Process(pid) if pid else None for pid in pids]
        return [p.memory_full_info().pss / 2**20 if p else 0.0 for p in processes]

    started = time.monotonic()
    samples, latencies, genre_turn, ready = [], [], 0, []
    next_trigger = started + 10
    next_memory = started
    while time.monotonic() - started < minutes * 60:
        time.sleep(0.5)
        ready.append(sum(engine.snapshot()["buffer"].values()))
        if time.monotonic() >= next_memory:
            next_memory += MEMORY_EVERY
            samples.append((time.monotonic() - started, *memory()))
        if time.monotonic() >= next_trigger:  # a manual trigger, quantise off, between the auto launches
            next_trigger += 15
            genre_turn += 1
            engine.select_genre(GENRES[genre_turn % len(GENRES)])
            engine.set_quantise("off")
            launched = engine.mixer.launch_count
            clock = engine.mixer.clock
            engine.trigger()
            deadline = time.monotonic() + 2
            while engine.mixer.launch_count == launched and time.monotonic() < deadline:
                time.sleep(0.001)
            if engine.mixer.launch_count > launched:
                log = engine.mixer.launches(launched)
                fade = len(engine._fade)
                first_sample = log[0][1] - fade
                latencies.append((first_sample - clock) / engine.settings.sample_rate * 1000)
            engine.set_quantise("1")
    final = engine.snapshot().plain()
    played = time.monotonic() - started
    output_latency = engine.mixer.output_latency * 1000
    engine.stop()
    engine.close()
    for process in background:
        process.kill()
    (out / "engine.json").write_text(json.dumps({
        "busy": busy, "busy_nice": busy_nice, "first_loop_seconds": first_loop_seconds, "ready": ready,
        "final": final, "underflows_before_play": underflows_before_play, "xruns_before_play": xruns_before_play,
        "block_time_at_play": block_time_at_play, "played_seconds": played,
        "memory": samples, "latencies_ms": latencies, "output_latency_ms": output_latency,
        "minutes": minutes}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--busy", type=int, default=0, help="background processes spinning through the set")
    parser.add_argument("--busy-nice", type=int, default=0, help="their niceness (0: as busy as anything; 19: idle)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        play(args.minutes, args.child, args.busy, args.busy_nice)
        return 0

    from tests.jackserver import late_clients, server_env, server_stalls, start_dummy_server, xrun_reports
    from livegen.engine.mixer import MixerState

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        server = start_dummy_server("livegen-bench", out / "jackd.log")
        try:
            benchkit.progress(f"playing {args.minutes:g} minutes through JACK (dummy, 48 kHz, 256 frames)")
            subprocess.run([sys.executable, __file__, "--minutes", str(args.minutes), "--child", str(out),
                            "--busy", str(args.busy), "--busy-nice", str(args.busy_nice)],
                           env=server_env("livegen-bench"), check=True)
        finally:
            server.terminate()
            server.wait(10)
        result = json.loads((out / "engine.json").read_text())
        realtime = "real-time" if "realtime mode" in (out / "jackd.log").read_text() else "non-real-time"
        xruns = xrun_reports(out / "jackd.log")

    def ours(lines: list[str]) -> int:
        return len(late_clients(lines, "PortAudio"))

    before = len(result["xruns_before_play"])

    final, memory, latencies = result["final"], result["memory"], result["latencies_ms"]
    played = MixerState.block_times_between(result["block_time_at_play"], final["block_time"])

    def block_shares(kind: str) -> str:
        counts = played[kind]
        edges = [f"{edge:.0%}" for edge in played["edges"]]
        names = [f"<{edges[0]}"] + [f"{a}-{b}" for a, b in zip(edges, edges[1:])] + [f">{edges[-1]}"]
        return ", ".join(f"{name}: {count}" for name, count in zip(names, counts))

    def total(rows):
        return benchkit.median([sum(row[1:]) for row in rows])

    def each(rows):
        return " + ".join(f"{benchkit.median([row[i] for row in rows]):.0f}" for i in (1, 2, 3))

    first_minute = [row for row in memory if row[0] < 60]
    last_minute = [row for row in memory if row[0] > memory[-1][0] - 60]
    generated = sum(final["generated"].values())
    ready = result["ready"]
    rows = [
        ["background load", f"{result['busy']} busy process(es) at nice {result['busy_nice']}"
         if result["busy"] else "none"],
        ["first loop after (s, from the engine's start)", f"{result['first_loop_seconds']:.1f}"],
        ["ready loops, all genres (min / median over the set, sampled every 0.5 s)",
         f"{min(ready)} / {benchkit.median(ready):.0f}" if ready else "-"],
        ["JACK xruns of the engine's client while playing (server log)",
         f"{ours(xruns[before:])} in {result['minutes']:g} min"],
        ["JACK xruns of the server itself while playing (its driver's timer woke late)",
         len(server_stalls(xruns[before:]))],
        ["audio callback time per block on the wall: blocks by share of the block", block_shares("wall")],
        ["audio callback time per block on its own CPU: blocks by share of the block", block_shares("cpu")],
        ["DSP load (the callback's share of real time, mean while playing)",
         f"{played['busy_seconds'] / result['played_seconds']:.1%}"],
        ["output underflows while playing (PortAudio flag, set by an xrun of any JACK client)",
         f"{final['underflows'] - result['underflows_before_play']} in {result['minutes']:g} min"],
        ["output underflows before the first loop (pre-roll, while the worker loads)", final["preroll_underflows"]],
        ["JACK xruns of the engine's client before the first loop (client start, worker loading)",
         ours(xruns[:before])],
        ["late launches (handed to the callback after their fade should have begun)", final["late_launches"]],
        ["loops generated / dropped", f"{generated} / {sum(final['dropped'].values())}"],
        ["launches", final["launches"]],
        ["worker real-time factor (loop seconds per second of work)", final["realtime_factor"]],
        ["memory, first minute (PSS, MiB: engine + worker + audio process)",
         f"{total(first_minute):.0f} ({each(first_minute)})"],
        ["memory, last minute (PSS, MiB: engine + worker + audio process)",
         f"{total(last_minute):.0f} ({each(last_minute)})"],
        ["memory, peak (PSS, MiB)", f"{max(sum(row[1:]) for row in memory):.0f}"],
        ["trigger to first crossfade sample, quantise off (ms, median / max)",
         f"{benchkit.median(latencies):.1f} / {max(latencies):.1f} ({len(latencies)} triggers)" if latencies else "-"],
        ["output stream latency (ms, added to the above at the speaker)", f"{result['output_latency_ms']:.1f}"],
    ]
    text = benchkit.machine_header("Live engine: underflows, memory, trigger latency", [
        f"JACK dummy server, {realtime}, 48 kHz, 256-frame periods; four genres loaded ({', '.join(GENRES)}); "
        "auto launch every bar at 124 BPM, so the worker generates flat out on the same cores",
        "worker: 1 torch thread at nice 5; engine: control thread, status; audio process: mixer callback",
    ]) + "\n" + benchkit.markdown_table(["what", "figure"], rows)
    benchkit.publish(text, f"engine-busy{args.busy}-nice{args.busy_nice}.md" if args.busy else "engine.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Exactly-once output on versus off, standalone and distributed (one instance), in one run on noida-db.

``make bench`` runs it after distributed.py. librdkafka's mock has no transactions (nor CreateTopics for the
internal topics), so this runs on noida-db 0.2.3 (fetched by ``scripts/test-brokers.sh``), in its own process,
loaded with the same deterministic corpus as bench.py (``--lines``, 16 partitions, lz4). Each configuration runs
``--repeats`` times with a fresh group and fresh output topics, timed and verified exactly as in distributed.py
(from the first 200 of /readyz to the timestamp of the last counts record, the median reported; output read back
by kcat, which reads read_committed).

Usage: ``.build-brokers/venv/bin/python bench/exactly_once.py [--lines N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
import distributed  # noqa: E402
from brokers import Noida  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration, the median reported")
    parser.add_argument("--bin-dir", type=Path, default=bench.REPO / ".build" / "release")
    args = parser.parse_args()
    binary = args.bin_dir / "sluice"
    launchers = [bench.Launcher()]  # before the corpus: see bench.LAUNCHER
    configurations = [
        (f"{mode}-eos-{state}", mode == "distributed", {"SLUICE_EXACTLY_ONCE": str(state == "on").lower()})
        for mode in ("standalone", "distributed") for state in ("off", "on")
    ]
    load_at_start = os.getloadavg()
    partitions = distributed.PARTITIONS
    with tempfile.TemporaryDirectory(prefix="sluice-bench-eos-") as directory:
        work = Path(directory)
        corpus = bench.generate_corpus(work / "lines.txt", args.lines, args.seed)
        broker = Noida(distributed.run_topics([name for name, _, _ in configurations], args.repeats), work)
        offsets = distributed.Offsets(broker.bootstrap)
        try:
            loading = time.perf_counter()
            bench.load_lines(broker.bootstrap, bench.INPUT_TOPIC, corpus.path, partitions, work)
            print(f"exactly-once bench: corpus loaded in {time.perf_counter() - loading:.1f} s", flush=True)
            results = []
            for name, is_distributed, env in configurations:
                print(f"exactly-once bench: {name} ...", flush=True)
                results.append(distributed.run_configuration(
                    launchers, binary, broker.bootstrap, name, is_distributed, offsets, corpus.truth, work, args.repeats,
                    env))
        finally:
            offsets.close()
            broker.stop()
            for launcher in launchers:
                launcher.close()
    header = ["configuration", "ready to last output s (median)", "every run s", "M words/s", "x EOS off",
              "CPU s (run 1)", "peak RSS MB", "latency ms (median of 5)", "output"]
    rows = []
    for index, r in enumerate(results):
        off = results[index - index % 2]
        rows.append([r.name, f"{r.time_s:.2f}", " / ".join(f"{t:.2f}" for t in r.times_s),
                     f"{corpus.words / r.time_s / 1e6:.2f}" if r.time_s > 0 else "-",
                     f"{r.time_s / off.time_s:.2f}" if off.time_s > 0 else "-", f"{r.cpu_s:.1f}",
                     f"{r.rss_mb[0]:.0f}", f"{r.latency_ms:.0f}", r.verified])
    table = [header, ["---"] * len(header)] + rows
    text = "\n".join("| " + " | ".join(row) + " |" for row in table)
    cpu = bench.cpu_model()
    output = "\n".join([
        f"# Exactly-once output on versus off ({datetime.datetime.now().isoformat(timespec='seconds')})", "",
        f"{args.lines:,} lines, {corpus.words:,} words; {partitions} input partitions, {distributed.SHARDS} shards in "
        f"distributed mode (one instance); noida-db 0.2.3 in its own process; CPU: {cpu}, {os.cpu_count()} cores; "
        f"load at start {load_at_start[0]:.2f}; revision {bench.git_revision()}; python {platform.python_version()}.",
        "", text, "",
        f"Time as in distributed-latest.md, median of {args.repeats} runs; x EOS off: against the same mode with "
        "exactly-once off. Output read back by kcat (read_committed).",
    ]) + "\n"
    bench.publish("exactly-once-latest.md", output)
    return 0 if all(r.verified.startswith("exact") for r in results) else 1


if __name__ == "__main__":
    bench.exit_with(main, "exactly-once bench")

#!/usr/bin/env python3
"""Benchmark shapes in one run: 4 and 16 input partitions, lz4 and uncompressed input, on Tansu (or noida-db).

The librdkafka mock keeps only 5 MiB per partition, so 1M lines fit it in 16 partitions only (see ``bench.py``);
Tansu keeps everything (in memory), so every shape runs on it, one broker for all, with kcat and sluice on the
librdkafka 2.16 of the ``confluent-kafka`` wheel (2.0.2 cannot talk to Tansu). Tansu answers a fetch with one
partition within the bytes asked for and takes 0.1-0.4 CPU s to serve a run over 1M lines; noida-db
(``--broker noida``, clients on Debian's 2.0.2) answers with whole partitions and takes as much CPU as sluice, on
the same two cores. For each shape the input is loaded with ``kcat -P -z <compression>`` (10,000-record producer
batches), then timed as in ``bench.py``, in ``--repeats`` rounds of kcat with tuned and with default fetch waits,
a sluice baseline run, one with the write-ahead log on and one with it off (kcat: the fastest run; sluice: median
wall and CPU times, highest peak RSS; each run verified exactly), each minus the same program over a
one-line-per-partition topic. A change that helps one shape and hurts another shows in one table:
``bench/results/shapes-latest.md`` (``shapes-latest-noida.md`` for noida-db).

Usage: ``.build-brokers/venv/bin/python bench/shapes.py [--broker tansu|noida] [--lines N] [--repeats R]``
(``make bench`` runs it on Tansu).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import bench
from brokers import BROKERS

SHAPES = [(partitions, compression) for partitions in (4, 16) for compression in ("lz4", "none")]
RUNS = ("wal-on", "wal-off")


def shape_name(partitions: int, compression: str) -> str:
    return f"p{partitions}-{compression}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bin-dir", type=Path, default=bench.REPO / ".build" / "release")
    parser.add_argument("--broker", choices=sorted(BROKERS), default="tansu")
    args = parser.parse_args()
    args.timeout, args.log_level = 600, "info"  # what bench.run_sluice_alternately reads
    binary = args.bin_dir / "sluice"
    launcher = bench.Launcher()  # before the corpus: see bench.LAUNCHER
    load_at_start = os.getloadavg()
    body: list[list[str]] = []
    notes: list[str] = []
    verified = True
    with tempfile.TemporaryDirectory(prefix="sluice-bench-shapes-") as directory:
        work = Path(directory)
        corpus = bench.generate_corpus(work / "lines.txt", args.lines, args.seed)
        topics: dict[str, int] = {}
        for partitions, compression in SHAPES:
            shape = shape_name(partitions, compression)
            topics[f"lines-{shape}"] = partitions
            topics[f"tiny-{partitions}"] = partitions
            for run in ("tiny",) + RUNS:
                for attempt in range(1, args.repeats + 1):
                    name = bench.run_name(f"{shape}-{run}", attempt)
                    topics[f"counts-{name}"] = topics[f"windows-{name}"] = partitions
        broker = BROKERS[args.broker](topics, work)
        os.environ.update(broker.client_environment)  # kcat, the loading and sluice alike
        try:
            loaded_tiny: set[int] = set()
            for partitions, compression in SHAPES:
                shape = shape_name(partitions, compression)
                args.partitions = partitions
                started = time.perf_counter()
                bench.load_lines(broker.bootstrap, f"lines-{shape}", corpus.path, partitions, work, compression)
                print(f"shapes: {shape} loaded in {time.perf_counter() - started:.1f} s", flush=True)
                tiny_topic = f"tiny-{partitions}"
                tiny_truth = {"tiny": partitions, "line": partitions, **{str(p): 1 for p in range(partitions)}}
                if partitions not in loaded_tiny:
                    tiny_path = work / f"{tiny_topic}.txt"
                    tiny_path.write_text("".join(f"tiny line {p}\n" for p in range(partitions)))
                    bench.load_lines(broker.bootstrap, tiny_topic, tiny_path, partitions, work)
                    loaded_tiny.add(partitions)
                kcat_tiny = bench.run_kcat(launcher, broker.bootstrap, tiny_topic, work / "kcat.log")
                kcat_default_tiny = bench.run_kcat(launcher, broker.bootstrap, tiny_topic, work / "kcat.log", [])
                kcat = bench.KcatRounds(launcher, broker.bootstrap, f"lines-{shape}", work / "kcat.log")
                print(f"shapes: {shape}: kcat, sluice baseline, WAL on and WAL off in rounds ...", flush=True)
                configurations = [bench.SluiceRun(f"{shape}-tiny", tiny_topic, True, tiny_truth)] + [
                    bench.SluiceRun(f"{shape}-{run}", f"lines-{shape}", run == "wal-on", corpus.truth) for run in RUNS]
                (tiny, tiny_check), *measured = bench.run_sluice_alternately(
                    launcher, binary, broker.bootstrap, configurations, work, args, each_round=kcat)
                rows = [bench.Row("kcat", kcat.fastest("kcat"), baseline=kcat_tiny),
                        bench.Row("kcat default fetch", kcat.fastest("kcat default fetch"), baseline=kcat_default_tiny)]
                verified &= tiny_check.ok
                for run, (m, check) in zip(RUNS, measured):
                    verified &= check.ok
                    rows.append(bench.Row(f"sluice {run.replace('-', ' ')}", m, baseline=tiny, verified=check))
                    notes.append(f"- {partitions} partitions, {compression}, {run}: wall / CPU s of the runs in order: "
                                 f"{m.runs_in_order()}")
                (wal_on, _), (wal_off, _) = measured
                notes.append(f"- {partitions} partitions, {compression}: WAL on / off in CPU (medians) "
                             f"{wal_on.cpu_s / wal_off.cpu_s:.2f}x")
                table = bench.table(rows, corpus)
                if not body:
                    body.append(["shape"] + table[0])
                body += [[f"{partitions} partitions, {compression}"] + row for row in table[1:]]
        finally:
            broker.stop()
            launcher.close()
    output = "\n".join([
        f"# Benchmark shapes ({datetime.datetime.now().isoformat(timespec='seconds')})", "",
        f"{args.lines:,} lines, {corpus.words:,} words, {corpus.bytes / 2**20:.1f} MiB; {broker.description} in its "
        f"own process; CPU: {bench.cpu_model()}, {os.cpu_count()} cores; load at start {load_at_start[0]:.2f}; revision "
        f"{bench.git_revision()}; python {platform.python_version()}; {args.repeats} rounds of kcat (tuned and default "
        "fetch waits), a sluice baseline, a WAL-on and a WAL-off run; kcat the fastest of its runs, sluice the median "
        "wall and CPU times and the highest peak RSS.", "",
        bench.render_markdown(body), "",
        "Marginal = wall time over the input minus the same program over a one-line-per-partition topic; x kcat = "
        "marginal time / kcat's (tuned fetch waits, and librdkafka's defaults); CPU s per M words = (CPU over the "
        "input - CPU over the baseline) / millions of words.", "",
        *notes,
    ]) + "\n"
    bench.publish("shapes-latest.md" if args.broker == "tansu" else f"shapes-latest-{args.broker}.md", output)
    return 0 if verified else 1


if __name__ == "__main__":
    bench.exit_with(main, "shapes bench")

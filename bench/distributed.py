#!/usr/bin/env python3
"""Distributed mode on 1, 2 and 3 instances against standalone, in one run (``make bench`` runs it after bench.py).

What it measures
----------------
One ``sluice-broker`` (librdkafka's mock) in its own process holds the same deterministic corpus as bench.py
(``--lines``, 16 partitions, lz4). Each configuration then runs over it with a fresh group and fresh output topics:

- ``standalone``: one instance, WAL on;
- ``distributed xN``: N instances of one group started together (``SLUICE_MODE=distributed``, 32 shards; the
  internal topics are created beforehand, as the mock has no CreateTopics).

No run stops at the end of input by itself (distributed mode has no end-of-input trigger), so each is timed from
the start of its processes to *output quiescence*: every input partition's offset committed to its end, and the
counts topic no longer growing for 3 s; the time is that of its last growth. Each configuration also runs over
the one-line-per-partition topic, and "marginal" is the difference: the time the input itself cost, without the
group joins (3 s each on the mock) and restores.

Then, with the instances still running: the counts topic is verified exactly against the truth (last value per
word), sentinel records an hour ahead close every window and the windows topic is verified (per word, its windows
add up to the total); five probe lines measure end-to-end latency (the probe's produce time to the timestamp of its
counts record, which sluice's producer stamps when it sends); then SIGTERM, and CPU seconds (user + sys, every
instance of the run together, idle time at the end included) and peak RSS per instance come from wait4.

Usage: ``.build-brokers/venv/bin/python bench/distributed.py [--lines N] [--instances 1,2,3]`` (needs the Python
confluent-kafka of ``scripts/test-brokers.sh`` for offsets; kcat for loading and reading).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the corpus, the launcher, the broker and kcat helpers)

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

PARTITIONS = 16
SHARDS = 32
QUIET_S = 3.0
RUN_TIMEOUT_S = 600
ENVIRONMENT = {
    "SLUICE_HTTP_PORT": "0",
    "SLUICE_SESSION_TIMEOUT_MS": "6000",
    "SLUICE_WINDOW_MS": "60000",
    "SLUICE_ALLOWED_LATENESS_MS": "0",
    "SLUICE_SHARDS": str(SHARDS),
}


@dataclass
class Result:
    name: str
    instances: int
    wall_s: float
    baseline_s: float
    cpu_s: float
    rss_mb: list[float]
    latency_ms: float
    verified: str


class Offsets:
    """End and committed offsets, read with confluent-kafka (one consumer per group, never joining it)."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.consumers: dict[str, Consumer] = {}

    def consumer(self, group: str) -> Consumer:
        if group not in self.consumers:
            self.consumers[group] = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                                              "enable.auto.commit": False})
        return self.consumers[group]

    def ends(self, topic: str, partitions: int) -> list[int]:
        consumer = self.consumer("bench-offsets")
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]

    def committed(self, group: str, topic: str, partitions: int) -> list[int]:
        answer = self.consumer(group).committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [max(tp.offset, 0) for tp in answer]

    def close(self) -> None:
        for consumer in self.consumers.values():
            consumer.close()


class Run:
    """The instances of one configuration, each started through its own launcher (for honest peak RSS)."""

    def __init__(self, launchers: list[bench.Launcher], binary: Path, bootstrap: str, name: str, topic: str,
                 distributed: bool, work: Path, extra_env: dict[str, str] | None = None):
        self.name, self.group = name, f"bench-{name}-{os.getpid()}"
        self.counts, self.windows = f"counts-{name}", f"windows-{name}"
        self.pids: list[Path] = []
        self.results: list[bench.Measurement | None] = [None] * len(launchers)
        self.threads: list[threading.Thread] = []
        self.started = time.perf_counter()
        for index, launcher in enumerate(launchers):
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_", "KAFKA_"))}
            env.update(ENVIRONMENT)
            env.update({
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SLUICE_INPUT_TOPICS": topic, "SLUICE_GROUP_ID": self.group,
                "SLUICE_COUNTS_TOPIC": self.counts, "SLUICE_WINDOWS_TOPIC": self.windows,
                "SLUICE_CHECKPOINT_DIR": str(work / f"data-{name}-{index}"), "SLUICE_INSTANCE_ID": f"{name}-{index}",
                "SLUICE_MODE": "distributed" if distributed else "standalone",
            })
            env.update(extra_env or {})
            pid = work / f"{name}-{index}.pid"
            self.pids.append(pid)
            # The shell writes its pid and becomes sluice (exec keeps the pid), so that the run can be stopped.
            argv = ["/bin/sh", "-c", f'echo $$ > "{pid}"; exec "{binary}"']
            log = work / f"sluice-{name}-{index}.log"

            def launch(index: int = index, launcher: bench.Launcher = launcher, argv: list[str] = argv,
                       env: dict[str, str] = env, log: Path = log) -> None:
                self.results[index] = launcher.run(argv, timeout_s=RUN_TIMEOUT_S, stdout=log, stderr="stdout",
                                                   env=env, cwd=work)

            thread = threading.Thread(target=launch, daemon=True)
            thread.start()
            self.threads.append(thread)

    def await_quiescence(self, offsets: Offsets, topic: str) -> float:
        """Seconds from the start to the last growth of the counts topic, once all input is committed."""
        ends = offsets.ends(topic, PARTITIONS)
        last_size, last_change = -1, time.perf_counter()
        deadline = time.perf_counter() + RUN_TIMEOUT_S
        while time.perf_counter() < deadline:
            if any(thread.is_alive() is False for thread in self.threads):
                raise bench.BenchError(f"an instance of {self.name} exited early: {self.results}")
            size = sum(offsets.ends(self.counts, PARTITIONS))
            now = time.perf_counter()
            if size != last_size:
                last_size, last_change = size, now
            elif now - last_change >= QUIET_S and size > 0 \
                    and offsets.committed(self.group, topic, PARTITIONS) == ends:
                return last_change - self.started
            time.sleep(0.1)
        raise bench.BenchError(f"{self.name}: no quiescence within {RUN_TIMEOUT_S} s")

    def stop(self) -> list[bench.Measurement]:
        for pid in self.pids:
            os.kill(int(pid.read_text().strip()), signal.SIGTERM)
        for thread in self.threads:
            thread.join(RUN_TIMEOUT_S)
        if any(m is None or m.exit_code != 0 for m in self.results):
            raise bench.BenchError(f"{self.name}: an instance did not stop cleanly: {self.results}")
        return [m for m in self.results if m]


def produce(bootstrap: str, topic: str, partition: int, lines: list[str], work: Path) -> None:
    path = work / "produce.txt"
    path.write_text("".join(line + "\n" for line in lines))
    bench.run_checked(["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", str(partition), "-l", str(path)],
                      timeout_s=60, what="kcat -P")


def probe_latency(bootstrap: str, run: Run, topic: str, work: Path) -> float:
    """Median of five probes: a line with a new word, from its produce time to the timestamp of its count."""
    latencies = []
    for probe in range(5):
        word = f"probe{probe}x{time.time_ns()}"
        sent_ms = time.time() * 1000
        produce(bootstrap, topic, probe % PARTITIONS, [word], work)
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", run.counts, "-e", "-q", "-o", "beginning",
                                  "-f", "%k\t%T\n"], capture_output=True, text=True, timeout=120).stdout
            stamps = [int(line.split("\t")[1]) for line in out.splitlines() if line.startswith(word + "\t")]
            if stamps:
                latencies.append(min(stamps) - sent_ms)
                break
            time.sleep(0.2)
        else:
            raise bench.BenchError(f"{run.name}: probe {word} never reached {run.counts}")
    return statistics.median(latencies)


def verify(bootstrap: str, run: Run, topic: str, truth: dict[str, int], work: Path) -> str:
    """Exact counts now; then sentinels close every window, and each word's windows must add up to its total."""
    counts_file = work / f"{run.counts}.tsv"
    bench.consume(bootstrap, run.counts, "%k\t%s\n", counts_file)
    counts = {}
    for line in counts_file.read_text().splitlines():
        key, _, value = line.partition("\t")
        counts[key] = int(value.split('"count":')[1].split(",")[0])
    wrong = [w for w in truth if counts.get(w) != truth[w]]
    # Earlier runs left their sentinels and probe lines in the input.
    extra = [w for w in counts if w not in truth and w != "sentinel" and not w.startswith("probe")]
    if wrong or extra:
        return f"MISMATCH: {len(wrong)} wrong or missing counts, {len(extra)} unexpected words"
    sentinel_ms = int(time.time() * 1000) + 1800 * 1000
    send_sentinels(bootstrap, topic, sentinel_ms)
    deadline = time.time() + 120
    windows_file = work / f"{run.windows}.tsv"
    while time.time() < deadline:
        bench.consume(bootstrap, run.windows, "%k\t%s\n", windows_file)
        windowed: dict[tuple[str, str], int] = {}
        for line in windows_file.read_text().splitlines():
            key, _, value = line.partition("\t")
            start = value.split('"window_start":')[1].split(",")[0]
            windowed[(key, start)] = int(value.split('"count":')[1].split(",")[0])
        totals: dict[str, int] = {}
        for (word, _), count in windowed.items():
            totals[word] = totals.get(word, 0) + count
        if all(totals.get(w) == c for w, c in truth.items()):
            return f"exact: {len(counts)} words, {len(windowed)} (window, word) counts"
        time.sleep(1)
    return "MISMATCH: windows did not add up to the totals within 120 s"


def send_sentinels(bootstrap: str, topic: str, timestamp_ms: int) -> None:
    """One line 'sentinel' per partition, stamped ``timestamp_ms`` (event time), with Python's producer."""
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition in range(PARTITIONS):
        producer.produce(topic, value=b"sentinel", partition=partition, timestamp=timestamp_ms)
    producer.flush(30)


def run_topics(names: list[str]) -> dict[str, int]:
    """The input topics, and the counts and windows topics of each configuration's run and baseline."""
    topics = {bench.INPUT_TOPIC: PARTITIONS, bench.TINY_TOPIC: PARTITIONS}
    for name in names:
        for suffix in ("", "-tiny"):
            topics[f"counts-{name}{suffix}"] = PARTITIONS
            topics[f"windows-{name}{suffix}"] = PARTITIONS
    return topics


def run_configuration(launchers: list[bench.Launcher], binary: Path, bootstrap: str, name: str, distributed: bool,
                      offsets: Offsets, truth: dict[str, int], work: Path,
                      extra_env: dict[str, str] | None = None) -> Result:
    baseline = Run(launchers, binary, bootstrap, f"{name}-tiny", bench.TINY_TOPIC, distributed, work, extra_env)
    baseline_s = baseline.await_quiescence(offsets, bench.TINY_TOPIC)
    baseline.stop()
    run = Run(launchers, binary, bootstrap, name, bench.INPUT_TOPIC, distributed, work, extra_env)
    wall_s = run.await_quiescence(offsets, bench.INPUT_TOPIC)
    verified = verify(bootstrap, run, bench.INPUT_TOPIC, truth, work)
    latency_ms = probe_latency(bootstrap, run, bench.INPUT_TOPIC, work)
    measurements = run.stop()
    return Result(name, len(launchers), wall_s, baseline_s, sum(m.cpu_s for m in measurements),
                  [m.max_rss_mb for m in measurements], latency_ms, verified)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--instances", default="1,2,3", help="distributed instance counts (default 1,2,3)")
    parser.add_argument("--bin-dir", type=Path, default=bench.REPO / ".build" / "release")
    args = parser.parse_args()
    counts = [int(n) for n in args.instances.split(",")]
    binary, broker_binary = args.bin_dir / "sluice", args.bin_dir / "sluice-broker"
    launchers = [bench.Launcher() for _ in range(max(counts))]  # before the corpus: see bench.LAUNCHER
    load_at_start = os.getloadavg()
    configurations = [("standalone", False, 1)] + [(f"distributed-x{n}", True, n) for n in counts]
    with tempfile.TemporaryDirectory(prefix="sluice-bench-distributed-") as directory:
        work = Path(directory)
        corpus = bench.generate_corpus(work / "lines.txt", args.lines, args.seed)
        topics = run_topics([name for name, _, _ in configurations])
        for name, distributed, _ in configurations:
            for suffix in ("", "-tiny") if distributed else ():
                group = f"bench-{name}{suffix}-{os.getpid()}"
                topics[f"{group}-partials"] = SHARDS
                topics[f"{group}-changelog"] = SHARDS
        broker = bench.Broker(broker_binary, topics, work / "broker.log")
        offsets = Offsets(broker.bootstrap)
        try:
            bench.load_lines(broker.bootstrap, bench.INPUT_TOPIC, corpus.path, PARTITIONS, work)
            tiny = work / "tiny.txt"
            tiny.write_text("".join(f"tiny line {p}\n" for p in range(PARTITIONS)))
            bench.load_lines(broker.bootstrap, bench.TINY_TOPIC, tiny, PARTITIONS, work)
            if any(low > 0 for low, _ in bench.watermarks(broker.bootstrap, bench.INPUT_TOPIC, PARTITIONS)):
                raise bench.BenchError("the mock's retention dropped input: use fewer lines")
            results = []
            for name, distributed, n in configurations:
                print(f"distributed bench: {name} ...", flush=True)
                results.append(run_configuration(launchers[:n], binary, broker.bootstrap, name, distributed,
                                                 offsets, corpus.truth, work))
        finally:
            offsets.close()
            broker.stop()
            for launcher in launchers:
                launcher.close()
    standalone = results[0]
    header = ["configuration", "instances", "wall s", "baseline s", "marginal s", "M words/s", "x standalone",
              "CPU s (all)", "peak RSS MB per instance", "latency ms (median of 5)", "output"]
    rows = []
    for r in results:
        marginal = r.wall_s - r.baseline_s
        rows.append([r.name, str(r.instances), f"{r.wall_s:.2f}", f"{r.baseline_s:.2f}", f"{marginal:.2f}",
                     f"{corpus.words / marginal / 1e6:.2f}" if marginal > 0 else "-",
                     f"{marginal / (standalone.wall_s - standalone.baseline_s):.2f}",
                     f"{r.cpu_s:.1f}", "/".join(f"{m:.0f}" for m in r.rss_mb), f"{r.latency_ms:.0f}", r.verified])
    table = [header, ["---"] * len(header)] + rows
    text = "\n".join("| " + " | ".join(row) + " |" for row in table)
    cpu = bench.cpu_model()
    notes = [
        f"# Distributed mode against standalone ({datetime.datetime.now().isoformat(timespec='seconds')})", "",
        f"{args.lines:,} lines, {corpus.words:,} words, {len(corpus.truth):,} distinct; {PARTITIONS} input partitions, "
        f"{SHARDS} shards; mock broker in its own process; CPU: {cpu}, {os.cpu_count()} cores; "
        f"load at start {load_at_start[0]:.2f}; revision {bench.git_revision()}; python {platform.python_version()}.",
        "", text, "",
        "wall: start of the instances to output quiescence (all input committed, the counts topic still for 3 s, the "
        "time of its last growth); baseline: the same over one line per partition; marginal = wall - baseline. CPU: "
        "every instance of the run, including the idle seconds while it was verified and probed.",
    ]
    output = "\n".join(notes) + "\n"
    bench.publish("distributed-latest.md", output)
    return 0 if all(r.verified.startswith("exact") for r in results) else 1


if __name__ == "__main__":
    bench.exit_with(main, "distributed bench")

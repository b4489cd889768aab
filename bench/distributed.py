#!/usr/bin/env python3
"""Distributed mode on 1, 2 and 3 instances against standalone, in one run (``make bench`` runs it after bench.py).

What it measures
----------------
One ``sluice-broker`` (librdkafka's mock) in its own process holds the same deterministic corpus as bench.py
(``--lines``, 16 partitions, lz4). Each configuration then runs over it with a fresh group and fresh output topics:

- ``standalone``: one instance, WAL on;
- ``distributed xN``: N instances of one group started together (``SLUICE_MODE=distributed``, 32 shards; the
  internal topics are created beforehand, as the mock has no CreateTopics).

No run stops at the end of input by itself (distributed mode has no end-of-input trigger), so each runs until
*output quiescence* (every input partition's offset committed to its end, in distributed mode every partial applied:
the shards' group committed to the end of the partials topic, and the counts topic no longer growing for 3 s) and
is timed from the first moment one of its instances answers ``/readyz`` with 200 (recovered, partitions assigned:
polled every 20 ms) to the timestamp of its last counts record (sluice's producer stamps a record when it sends it).
So the group join (3 s on the mock, more with rebalances between several instances) is left out, and the input's
processing, output included, is all that is timed: no baseline run to subtract, whose own join
time varied by seconds. The last batch waits for its batch boundary, so a time carries up to one batch interval
(1 s) of quantisation: each configuration runs ``--repeats`` times (fresh group, fresh output topics) and the
median is reported, every run listed.

Each run's counts topic is verified exactly against the truth (last value per word). Then, for the first run of
each configuration, with its instances still running: sentinel records an hour ahead close every window and the
windows topic is verified (per word, its windows add up to the total); five probe lines measure end-to-end
latency (the probe's produce time to the timestamp of its counts record). Then SIGTERM, and CPU seconds (user +
sys, every instance of the run together, idle time at the end included) and peak RSS per instance come from wait4.

Usage: ``.build-brokers/venv/bin/python bench/distributed.py [--lines N] [--instances 1,2,3] [--repeats R]`` (needs the Python
confluent-kafka of ``scripts/test-brokers.sh`` for offsets; kcat for loading and reading).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the corpus, the launcher, the broker and kcat helpers)

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

PARTITIONS = 16
SHARDS = 32
QUIET_S = 3.0
READY_POLL_S = 0.02
RUN_TIMEOUT_S = 600
ENVIRONMENT = {
    "SLUICE_SESSION_TIMEOUT_MS": "6000",
    "SLUICE_WINDOW_MS": "60000",
    "SLUICE_ALLOWED_LATENESS_MS": "0",
    "SLUICE_SHARDS": str(SHARDS),
}


@dataclass
class Result:
    name: str
    instances: int
    times_s: list[float]  # readiness to last output, every run
    cpu_s: float  # the first run's
    rss_mb: list[float]
    latency_ms: float
    verified: str

    @property
    def time_s(self) -> float:
        return statistics.median(self.times_s)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
        self.distributed = distributed
        self.exactly_once = (extra_env or {}).get("SLUICE_EXACTLY_ONCE") == "true"
        self.counts, self.windows = f"counts-{name}", f"windows-{name}"
        self.pids: list[Path] = []
        self.results: list[bench.Measurement | None] = [None] * len(launchers)
        self.threads: list[threading.Thread] = []
        self.ports = [free_port() for _ in launchers]
        self.ready_at: float | None = None  # time.time() of the first 200 from any instance's /readyz
        for index, launcher in enumerate(launchers):
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_", "KAFKA_"))}
            env.update(ENVIRONMENT)
            env.update({
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SLUICE_INPUT_TOPICS": topic, "SLUICE_GROUP_ID": self.group,
                "SLUICE_COUNTS_TOPIC": self.counts, "SLUICE_WINDOWS_TOPIC": self.windows,
                "SLUICE_CHECKPOINT_DIR": str(work / f"data-{name}-{index}"), "SLUICE_INSTANCE_ID": f"{name}-{index}",
                "SLUICE_MODE": "distributed" if distributed else "standalone",
                "SLUICE_HTTP_PORT": str(self.ports[index]),
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
        self.watcher = threading.Thread(target=self.watch_readiness, daemon=True)
        self.watcher.start()

    def watch_readiness(self) -> None:
        deadline = time.time() + RUN_TIMEOUT_S
        while time.time() < deadline:
            for port in self.ports:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                        if answer.status == 200:
                            self.ready_at = time.time()
                            return
                except (urllib.error.URLError, OSError):
                    pass  # not listening yet, or 503 (not ready)
            time.sleep(READY_POLL_S)

    def await_quiescence(self, offsets: Offsets, topic: str, work: Path) -> float:
        """Seconds from the first readiness to the timestamp of the last counts record, once all input is
        committed and the counts topic has not grown for QUIET_S."""
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
                    and offsets.committed(self.group, topic, PARTITIONS) == ends and self.shards_caught_up(offsets):
                if self.ready_at is None:
                    raise bench.BenchError(f"{self.name}: output without any instance answering /readyz with 200")
                stamps = work / f"{self.counts}.timestamps"
                bench.consume(offsets.bootstrap, self.counts, "%T\n", stamps)
                last_output_ms = max(int(line) for line in stamps.read_text().split())
                return last_output_ms / 1000 - self.ready_at
            time.sleep(0.1)
        raise bench.BenchError(f"{self.name}: no quiescence within {RUN_TIMEOUT_S} s")

    def shards_caught_up(self, offsets: Offsets) -> bool:
        """Distributed mode: every partial applied, i.e. the shards' group has committed the partials topic to its
        end. Stage 1 commits its input once the partials are delivered, and a shard can sit out a rebalance (up to a
        session timeout, longer than QUIET_S) before it applies them: committed input and a quiet counts topic alone
        declared runs of three instances complete with a third to all of the counts still to come."""
        if not self.distributed:
            return True
        partials = f"{self.group}-partials"
        # With exactly-once output each partition ends with the commit marker of its last transaction: the shards'
        # committed offset, the one after the last record they applied, is then one below the end.
        slack = 1 if self.exactly_once else 0
        committed = offsets.committed(f"{self.group}-shards", partials, SHARDS)
        return all(end - done <= slack for done, end in zip(committed, offsets.ends(partials, SHARDS)))

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
    wrong_counts = verify_counts(bootstrap, run, truth, work)
    if wrong_counts:
        return f"MISMATCH: {wrong_counts}"
    counts = read_counts(bootstrap, run, work)
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


def read_counts(bootstrap: str, run: Run, work: Path) -> dict[str, int]:
    """The last count per word in the run's counts topic."""
    counts_file = work / f"{run.counts}.tsv"
    bench.consume(bootstrap, run.counts, "%k\t%s\n", counts_file)
    counts = {}
    for line in counts_file.read_text().splitlines():
        key, _, value = line.partition("\t")
        counts[key] = int(value.split('"count":')[1].split(",")[0])
    return counts


def verify_counts(bootstrap: str, run: Run, truth: dict[str, int], work: Path) -> str:
    """What is wrong with the run's counts ("" if they are exact)."""
    counts = read_counts(bootstrap, run, work)
    wrong = [w for w in truth if counts.get(w) != truth[w]]
    # Earlier runs left their sentinels and probe lines in the input.
    extra = [w for w in counts if w not in truth and w != "sentinel" and not w.startswith("probe")]
    return f"{len(wrong)} wrong or missing counts, {len(extra)} unexpected words" if wrong or extra else ""


def send_sentinels(bootstrap: str, topic: str, timestamp_ms: int) -> None:
    """One line 'sentinel' per partition, stamped ``timestamp_ms`` (event time), with Python's producer."""
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition in range(PARTITIONS):
        producer.produce(topic, value=b"sentinel", partition=partition, timestamp=timestamp_ms)
    producer.flush(30)


def run_name(name: str, attempt: int) -> str:
    return f"{name}-r{attempt}"


def run_topics(names: list[str], repeats: int) -> dict[str, int]:
    """The input topic, and the counts and windows topics of each run of each configuration."""
    topics = {bench.INPUT_TOPIC: PARTITIONS}
    for name in names:
        for attempt in range(repeats):
            topics[f"counts-{run_name(name, attempt)}"] = PARTITIONS
            topics[f"windows-{run_name(name, attempt)}"] = PARTITIONS
    return topics


def run_configuration(launchers: list[bench.Launcher], binary: Path, bootstrap: str, name: str, distributed: bool,
                      offsets: Offsets, truth: dict[str, int], work: Path, repeats: int,
                      extra_env: dict[str, str] | None = None) -> Result:
    """``repeats`` runs; the first is also verified over its windows, probed for latency, and measured for CPU and
    memory (the later ones only for time and exact counts)."""
    times, first = [], None
    for attempt in range(repeats):
        run = Run(launchers, binary, bootstrap, run_name(name, attempt), bench.INPUT_TOPIC, distributed, work, extra_env)
        times.append(run.await_quiescence(offsets, bench.INPUT_TOPIC, work))
        print(f"  {times[-1]:.2f} s from readiness to the last output", flush=True)
        if attempt == 0:
            verified = verify(bootstrap, run, bench.INPUT_TOPIC, truth, work)
            latency_ms = probe_latency(bootstrap, run, bench.INPUT_TOPIC, work)
            first = run.stop()
        else:
            counts_only = verify_counts(bootstrap, run, truth, work)
            run.stop()
            if counts_only:
                verified = f"MISMATCH in run {attempt + 1}: {counts_only}"
    return Result(name, len(launchers), times, sum(m.cpu_s for m in first), [m.max_rss_mb for m in first],
                  latency_ms, verified)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--instances", default="1,2,3", help="distributed instance counts (default 1,2,3)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration, the median reported")
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
        topics = run_topics([name for name, _, _ in configurations], args.repeats)
        for name, distributed, _ in configurations:
            for attempt in range(args.repeats) if distributed else ():
                group = f"bench-{run_name(name, attempt)}-{os.getpid()}"
                topics[f"{group}-partials"] = SHARDS
                topics[f"{group}-changelog"] = SHARDS
                topics[f"{group}-config"] = 1
                topics[f"{group}-members"] = 1
        broker = bench.Broker(broker_binary, topics, work / "broker.log")
        offsets = Offsets(broker.bootstrap)
        try:
            bench.load_lines(broker.bootstrap, bench.INPUT_TOPIC, corpus.path, PARTITIONS, work)
            if any(low > 0 for low, _ in bench.watermarks(broker.bootstrap, bench.INPUT_TOPIC, PARTITIONS)):
                raise bench.BenchError("the mock's retention dropped input: use fewer lines")
            results = []
            for name, distributed, n in configurations:
                print(f"distributed bench: {name} ...", flush=True)
                results.append(run_configuration(launchers[:n], binary, broker.bootstrap, name, distributed,
                                                 offsets, corpus.truth, work, args.repeats))
        finally:
            offsets.close()
            broker.stop()
            for launcher in launchers:
                launcher.close()
    standalone = results[0]
    header = ["configuration", "instances", "ready to last output s (median)", "every run s", "M words/s",
              "x standalone", "CPU s (all, run 1)", "peak RSS MB per instance", "latency ms (median of 5)", "output"]
    rows = []
    for r in results:
        rows.append([r.name, str(r.instances), f"{r.time_s:.2f}", " / ".join(f"{t:.2f}" for t in r.times_s),
                     f"{corpus.words / r.time_s / 1e6:.2f}" if r.time_s > 0 else "-",
                     f"{r.time_s / standalone.time_s:.2f}",
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
        "Time: from the first 200 of any instance's /readyz (polled every 20 ms) to the timestamp of the last counts "
        "record, once all input is committed (and, distributed, every partial applied) and the counts topic has been "
        "still for 3 s; the group join is outside "
        f"it. Median of {args.repeats} runs, each with its counts verified exactly; the first run also had its windows "
        "verified and its latency probed. CPU: every instance of the first run, including the idle seconds while it "
        "was verified and probed.",
    ]
    output = "\n".join(notes) + "\n"
    bench.publish("distributed-latest.md", output)
    return 0 if all(r.verified.startswith("exact") for r in results) else 1


if __name__ == "__main__":
    bench.exit_with(main, "distributed bench")

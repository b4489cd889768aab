#!/usr/bin/env python3
"""End-to-end throughput benchmark of sluice against kcat reading the same topic.

What it measures
----------------
One run of this script:

1. starts ``sluice-broker`` (librdkafka's mock cluster) in its own process, with a
   16-partition input topic, two 16-partition baseline topics (one empty, one holding a
   single line per partition) and one pair of 16-partition output topics per sluice run
   (so that every run's output can be verified on its own);
2. generates a deterministic synthetic corpus (seeded; Zipf-distributed words, s = 1.0,
   over a 50,000-word vocabulary of pronounceable made-up words; 8-12 words a line;
   mixed case), loads it with ``kcat -P`` (lz4, large batches), and checks the topic's
   low/high watermarks: the mock broker silently drops everything past 5 MiB per
   partition, so a run over a truncated topic would measure, and verify, nothing;
3. times ``kcat -C`` reading the whole topic to /dev/null, the I/O baseline, once in each
   round of the sluice runs below, so that both are timed in the same minutes (the fastest
   kcat run is reported);
4. times ``sluice`` with ``SLUICE_STOP_AT_END=true`` (read to the end offsets seen at
   start-up, process, flush windows, checkpoint, exit 0) with the write-ahead log on
   and off, each with a fresh consumer group and checkpoint directory, in five rounds
   (``--repeats``) of one baseline run, one run with the log on and one with it off, so that
   the machine's drift touches all alike; the median wall and CPU times are reported, and
   the highest peak RSS;
   both programs also run over the two baseline topics (see below);
5. verifies every run's output exactly: the last value per word in its counts topic
   must equal the truth computed here from the generated lines (split on whitespace,
   lowercased), and the windowed counts of each word must add up to the same total;
6. prints one table and writes it, with the machine's details, as Markdown to
   ``bench/results/latest.md`` and a timestamped copy.

Why marginal times
------------------
Both programs pay a fixed cost that has nothing to do with the input: process
start-up, connecting to the broker, and for sluice the consumer-group join, which the
librdkafka 2.0.2 mock makes last 3 s for every new group, plus the final checkpoint and
shut-down. At benchmark sizes that fixed cost is a large share of the wall time, so
each program is also run over a baseline topic, and the table reports

    marginal = wall time over the input - wall time over the baseline topic,

i.e. the time the input itself cost. Records/s and words/s are computed from the
marginal time, and "x kcat" is sluice's marginal time divided by kcat's: how many times
longer sluice takes to process the data than kcat takes merely to read it.

The baseline topic holds ONE line per partition, not nothing, because an empty topic
does not exercise the fixed path: sluice sees end offsets of 0 at start-up and exits
at once without joining the group (well under a second instead of 3 s+). The
empty-topic runs are still timed and shown, for information; their marginal column is
empty. kcat gets the same baseline for symmetry, and runs with short fetch waits
(see KCAT_CONSUMER_OPTIONS): with librdkafka's defaults its fixed cost jumps between
0.5 and 1.5 s from run to run, more than reading the whole input costs.

CPU time (user + sys) and peak RSS (ru_maxrss) come from ``os.wait4`` on each child,
which a small launcher process reaps (see LAUNCHER for why). The launcher also samples
the child's VmRSS every 100 ms; "RSS by quarter" is the highest sample in each quarter
of the run, which shows whether memory keeps growing over a long run (``--lines``).

The machine is shared (2 cores): the load average at the start is written to the
results, so that a noisy run can be recognised.

Usage: ``python3 bench/bench.py [--lines N] [--seed S] [--partitions P]
[--skip-wal-off] [--keep]`` (``make bench`` builds the release binaries first).
Needs only Python 3.9+ (Linux, pidfd) and kcat. Environment variables BENCH_SLUICE_X=v
set SLUICE_X=v for every sluice run, for tuning experiments (recorded in the results).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import datetime
import itertools
import json
import os
import platform
import random
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"

VOCABULARY_SIZE = 50_000
ZIPF_S = 1.0
WORDS_PER_LINE = (8, 12)
# How the case of a token is varied: (probability, transform). Lowercasing undoes all of them.
CASE_VARIANTS = ((0.70, str.lower), (0.20, str.capitalize), (0.10, str.upper))
CONSONANTS = "bcdfghjklmnprstvz"  # 17 x 5 vowels = 85 two-letter syllables
VOWELS = "aeiou"

INPUT_TOPIC = "lines"
EMPTY_TOPIC = "empty"
TINY_TOPIC = "tiny"  # one line per partition: the baseline for marginal times
MOCK_RETENTION_BYTES = 5 * 1024 * 1024  # per partition, see shared/KAFKA-NOTES.md

KCAT_TIMEOUT_S = 300
BROKER_START_TIMEOUT_S = 30


class BenchError(Exception):
    """A failure that ends the benchmark with a message (no traceback)."""


# --------------------------------------------------------------------------- input


@dataclass
class Corpus:
    lines: int
    words: int
    bytes: int
    truth: dict[str, int]  # lowercased word -> occurrences
    path: Path


def make_vocabulary(rng: random.Random, size: int) -> list[str]:
    """``size`` distinct pronounceable lowercase words, ranked by the order returned.

    Each word is 2 or 3 consonant-vowel syllables; every code in the combined space maps to
    exactly one string (2-syllable words are 4 letters, 3-syllable ones 6), so a sample of
    distinct codes is a set of distinct words.
    """
    syllables = [c + v for c in CONSONANTS for v in VOWELS]
    n = len(syllables)
    two, three = n * n, n * n * n
    if size > two + three:
        raise BenchError(f"vocabulary of {size} words is larger than the {two + three} possible")

    def word(code: int) -> str:
        if code < two:
            return syllables[code // n] + syllables[code % n]
        code -= two
        return syllables[code // (n * n)] + syllables[code // n % n] + syllables[code % n]

    return [word(code) for code in rng.sample(range(two + three), size)]


def generate_corpus(path: Path, lines: int, seed: int) -> Corpus:
    """Writes ``lines`` lines to ``path`` and returns them with the true word counts."""
    rng = random.Random(seed)
    vocabulary = make_vocabulary(rng, VOCABULARY_SIZE)

    # One weighted draw picks both the word (Zipf rank) and its spelling (case variant).
    population: list[str] = []
    cumulative: list[float] = []
    total = 0.0
    for rank, word in enumerate(vocabulary, start=1):
        for probability, transform in CASE_VARIANTS:
            population.append(transform(word))
            total += probability / rank**ZIPF_S
            cumulative.append(total)

    low, high = WORDS_PER_LINE
    lengths = [rng.randint(low, high) for _ in range(lines)]
    word_count = sum(lengths)
    # random.choices with cum_weights, inlined to skip its per-call argument handling.
    draw, last = rng.random, len(cumulative) - 1
    tokens = [population[bisect.bisect(cumulative, draw() * total, 0, last)] for _ in range(word_count)]

    truth: collections.Counter[str] = collections.Counter()
    for spelling, occurrences in collections.Counter(tokens).items():
        truth[spelling.lower()] += occurrences

    size = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        position = 0
        chunk: list[str] = []
        for length in lengths:
            chunk.append(" ".join(tokens[position : position + length]))
            position += length
            if len(chunk) == 10_000:
                text = "\n".join(chunk) + "\n"
                size += len(text)
                out.write(text)
                chunk.clear()
        if chunk:
            text = "\n".join(chunk) + "\n"
            size += len(text)
            out.write(text)
    return Corpus(lines=lines, words=word_count, bytes=size, truth=dict(truth), path=path)


# --------------------------------------------------------------------------- processes


@dataclass
class Measurement:
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    exit_code: int
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    # With repeated runs: every run's wall and CPU time, in run order (the medians being this one's).
    all_walls: list[float] = field(default_factory=list)
    all_cpus: list[float] = field(default_factory=list)

    def runs_in_order(self) -> str:
        """Every run's wall / CPU seconds, in run order."""
        return ", ".join(f"{wall:.2f} / {cpu:.2f}" for wall, cpu in zip(self.all_walls, self.all_cpus))

    def rss_by_quarter(self) -> str:
        """The highest sampled RSS (MB) in each quarter of the run: flat when memory does not grow."""
        return self.rss_profile(4)

    def rss_profile(self, parts: int) -> str:
        """The highest sampled RSS (MB) in each of ``parts`` equal slices of the run's wall time."""
        if not self.rss_samples:
            return "-"
        peaks = [0.0] * parts
        for seconds, kb in self.rss_samples:
            index = min(parts - 1, int(parts * seconds / max(self.wall_s, 1e-9)))
            peaks[index] = max(peaks[index], kb / 1024)
        return "/".join(f"{peak:.0f}" for peak in peaks)


# The process that starts every measured command, and reaps it with wait4.
#
# It exists for peak RSS. Linux folds the RSS that a forked child had BEFORE exec into its ru_maxrss
# (exec_mmap keeps the old address space's high-water mark): a command started straight from this
# script would report at least this script's own peak, which holds the whole corpus (hundreds of MB).
# So a small Python process, started before the corpus is generated, forks and execs each measured
# command; its children's ru_maxrss then has a floor of the launcher's own RSS (about 10 MB, measured
# with /bin/true and written to the results), not this script's.
LAUNCHER = r"""
import json, os, select, signal, sys, time
for request in sys.stdin:
    r = json.loads(request)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            if r["cwd"]:
                os.chdir(r["cwd"])
            fd = os.open(os.devnull, os.O_RDONLY); os.dup2(fd, 0)
            fd = os.open(r["stdout"] or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND); os.dup2(fd, 1)
            if r["stderr"] == "stdout":
                os.dup2(1, 2)
            else:
                fd = os.open(r["stderr"] or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND); os.dup2(fd, 2)
            os.closerange(3, 1 << 16)
            os.execvpe(r["argv"][0], r["argv"], r["env"])
        except BaseException as e:
            os.write(2, f"launcher: cannot run {r['argv'][0]}: {e}\n".encode())
        os._exit(127)
    pidfd = os.pidfd_open(pid)
    samples = []  # (seconds since start, VmRSS in kB), every 100 ms
    ready = False
    while not ready and time.perf_counter() - started < r["timeout"]:
        ready = bool(select.select([pidfd], [], [], 0.1)[0])
        try:
            with open(f"/proc/{pid}/status") as status_file:
                for line in status_file:
                    if line.startswith("VmRSS:"):
                        samples.append((time.perf_counter() - started, int(line.split()[1])))
        except OSError:
            pass
    if not ready:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    os.close(pidfd)
    print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
                      "exit": os.waitstatus_to_exitcode(status), "timed_out": not ready, "rss": samples}), flush=True)
"""


class Launcher:
    """Runs commands through LAUNCHER, one at a time, and returns their measurements."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def run(self, argv: list[str], *, timeout_s: float, stdout: Path | None = None, stderr: Path | str | None = None,
            env: dict[str, str] | None = None, cwd: Path | None = None) -> Measurement:
        """``stdout``/``stderr``: a file to append to, None for /dev/null, or stderr="stdout"."""
        request = {"argv": argv, "timeout": timeout_s, "cwd": str(cwd) if cwd else None,
                   "stdout": str(stdout) if stdout else None, "stderr": str(stderr) if stderr else None,
                   "env": dict(os.environ if env is None else env)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s + 30)
        answer = self.process.stdout.readline() if ready else ""
        if not answer:
            raise BenchError(f"the launcher did not answer for: {' '.join(argv)}")
        result = json.loads(answer)
        if result["timed_out"]:
            raise BenchError(f"timed out after {timeout_s:.0f} s and killed: {' '.join(argv)}")
        return Measurement(wall_s=result["wall"], cpu_s=result["cpu"], max_rss_mb=result["maxrss_kb"] / 1024,
                           exit_code=result["exit"], rss_samples=[tuple(sample) for sample in result["rss"]])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def run_checked(argv: list[str], *, timeout_s: float, what: str) -> str:
    """Runs a helper command and returns its stdout; fails with its stderr."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: timed out after {timeout_s:.0f} s: {' '.join(argv)}") from None
    if done.returncode != 0:
        raise BenchError(f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{done.stderr.strip()}")
    return done.stdout


class Broker:
    """``sluice-broker`` in its own process; serves until its stdin is closed."""

    def __init__(self, binary: Path, topics: dict[str, int], log_path: Path):
        argv = [str(binary)]
        for name, partitions in topics.items():
            argv += ["--topic", f"{name}:{partitions}"]
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        ready, _, _ = select.select([self.process.stdout], [], [], BROKER_START_TIMEOUT_S)
        first = self.process.stdout.readline().decode(errors="replace").strip() if ready else ""
        if not first.startswith("bootstrap="):
            self.stop()
            raise BenchError(f"sluice-broker did not print bootstrap=... (got {first!r}); see {log_path}")
        self.bootstrap = first.split("=", 1)[1]
        # Keep draining stdout so that the broker never blocks on a full pipe.
        threading.Thread(target=shutil.copyfileobj, args=(self.process.stdout, self._log), daemon=True).start()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


# --------------------------------------------------------------------------- kafka helpers


def watermarks(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, int]]:
    """(low, high) offsets of every partition of ``topic``, via ``kcat -Q``."""
    # Logical timestamps: -2 = beginning, -1 = end. -Q answers one query per (topic, partition),
    # so the two ends are asked for separately.
    low = _query_offsets(["kcat", "-Q", "-b", bootstrap, "-J"]
                         + [a for p in range(partitions) for a in ("-t", f"{topic}:{p}:-2")])
    high = _query_offsets(["kcat", "-Q", "-b", bootstrap, "-J"]
                          + [a for p in range(partitions) for a in ("-t", f"{topic}:{p}:-1")])
    return [(low[p], high[p]) for p in range(partitions)]


def _query_offsets(argv: list[str]) -> dict[int, int]:
    answer = json.loads(run_checked(argv, timeout_s=60, what="kcat -Q"))
    offsets: dict[int, int] = {}
    for topic in answer.values():
        for key, value in topic.items():
            if key.isdigit():
                if "error" in value:
                    raise BenchError(f"kcat -Q: partition {key}: {value['error']}")
                offsets[int(key)] = int(value["offset"])
    return offsets


# Without these, librdkafka's 500 ms defaults add 0.5-1.5 s of waiting, in 0.5 s steps, to every kcat run
# (an empty fetch is held fetch.wait.max.ms by the mock, then backed off): more than reading 1M records
# takes. They change how long an idle consumer waits, not how fast data is fetched.
KCAT_CONSUMER_OPTIONS = ["-X", "fetch.wait.max.ms=10", "-X", "fetch.error.backoff.ms=10"]
KCAT_REPEATS = 3  # kcat runs are short: the fastest of a few is the least disturbed by the shared machine


def load_lines(bootstrap: str, topic: str, corpus: Path, partitions: int, work: Path, compression: str = "lz4") -> None:
    """Produces line i of ``corpus`` to partition i % ``partitions`` of ``topic``.

    Explicit round-robin, one ``kcat -P -p N`` per partition: kcat's default (sticky) partitioner
    sends everything produced within 10 ms to one partition, which overflows the mock's retention.
    Each partition's last line goes in a producer batch of its own: Tansu answers ListOffsets "latest"
    with the newest batch's base offset + 1, which is then the partition's true end.
    """
    files = [work / f"{topic}-{p}.txt" for p in range(partitions)]
    lasts = [path.with_suffix(".last") for path in files]
    outs = [open(f, "w", encoding="utf-8") for f in files]
    # A partition's line is written once the next one for it comes, so that its last line is left over.
    held: list[str | None] = [None] * partitions
    try:
        with open(corpus, encoding="utf-8") as lines:
            for line, p in zip(lines, itertools.cycle(range(partitions))):
                if held[p] is not None:
                    outs[p].write(held[p])
                held[p] = line
    finally:
        for out in outs:
            out.close()
    for p in range(partitions):
        lasts[p].write_text(held[p] or "", encoding="utf-8")
        for part in (files[p], lasts[p]):
            if part.stat().st_size:
                run_checked(["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", str(p), "-z", compression,
                             "-X", "batch.num.messages=10000", "-X", "linger.ms=50", "-l", str(part)],
                            timeout_s=KCAT_TIMEOUT_S, what=f"loading partition {p} with kcat -P")
            part.unlink()


def consume(bootstrap: str, topic: str, fmt: str, out_path: Path) -> None:
    """Reads ``topic`` from the beginning to its end into ``out_path``."""
    argv = ["kcat", "-C", "-b", bootstrap, "-t", topic, *KCAT_CONSUMER_OPTIONS, "-e", "-q", "-o", "beginning",
            "-f", fmt]
    try:
        with open(out_path, "wb") as out:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                                  timeout=KCAT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"timed out after {KCAT_TIMEOUT_S} s: {' '.join(argv)}") from None
    if done.returncode != 0:
        raise BenchError(f"kcat -C -t {topic} exited {done.returncode}: {done.stderr.decode(errors='replace')}")


# --------------------------------------------------------------------------- verification


@dataclass
class Verification:
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)


def verify(bootstrap: str, counts_topic: str, windows_topic: str, partitions: int, truth: dict[str, int],
           work: Path, max_examples: int = 10) -> Verification:
    """Compares a run's output topics with the truth.

    Counts topic: the last value per key (word) must be the word's total. Windows topic: the
    last value per (word, window_start), summed over windows, must also be the total.
    """
    problems: list[str] = []
    details: list[str] = []
    for topic in (counts_topic, windows_topic):
        dropped = [(p, lo) for p, (lo, _) in enumerate(watermarks(bootstrap, topic, partitions)) if lo > 0]
        if dropped:
            problems.append(f"{topic} lost its oldest records to the mock's retention (low watermarks {dropped})")

    counts_file = work / f"{counts_topic}.tsv"
    consume(bootstrap, counts_topic, "%k\t%s\n", counts_file)
    counts: dict[str, int] = {}
    records = 0
    bad_records: list[str] = []
    with open(counts_file, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            records += 1
            key, _, value = line.rstrip("\n").partition("\t")
            try:
                decoded = json.loads(value)
                if decoded["word"] != key:
                    bad_records.append(line.strip())
                counts[key] = int(decoded["count"])
            except (ValueError, KeyError, TypeError):
                bad_records.append(line.strip())

    windows_file = work / f"{windows_topic}.tsv"
    consume(bootstrap, windows_topic, "%k\t%s\n", windows_file)
    windowed: dict[tuple[str, int], int] = {}
    window_records = 0
    with open(windows_file, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            window_records += 1
            key, _, value = line.rstrip("\n").partition("\t")
            try:
                decoded = json.loads(value)
                windowed[(key, int(decoded["window_start"]))] = int(decoded["count"])
            except (ValueError, KeyError, TypeError):
                bad_records.append(line.strip())
    window_totals: collections.Counter[str] = collections.Counter()
    windows_seen = set()
    for (word, start), count in windowed.items():
        window_totals[word] += count
        windows_seen.add(start)

    if bad_records:
        problems.append(f"{len(bad_records)} malformed output records, e.g. {bad_records[:3]}")
    for name, got in (("counts", counts), ("windows", window_totals)):
        missing = [w for w in truth if w not in got]
        extra = [w for w in got if w not in truth]
        wrong = [w for w in truth if w in got and got[w] != truth[w]]
        if missing or extra or wrong:
            problems.append(f"{name}: {len(wrong)} wrong, {len(missing)} missing, {len(extra)} unexpected words "
                            f"(sum expected {sum(truth.values())}, got {sum(got.values())})")
            by_frequency = sorted(wrong + missing, key=lambda w: -truth[w])[:max_examples]
            for w in by_frequency:
                details.append(f"{name}: {w!r} expected {truth[w]}, got {got.get(w, 'nothing')}")
            for w in extra[:max_examples]:
                details.append(f"{name}: unexpected {w!r} = {got[w]}")
    summary = (f"{records} counts records for {len(counts)} words; {window_records} window records "
               f"for {len(windowed)} (word, window) pairs over {len(windows_seen)} window(s); "
               f"{len(truth)} distinct words in the input")
    if problems:
        return Verification(False, summary + ". MISMATCH: " + "; ".join(problems), details)
    return Verification(True, summary + ": exact", details)


# --------------------------------------------------------------------------- runs


@dataclass
class Row:
    name: str
    measurement: Measurement
    baseline: Measurement | None = None  # the same program over the one-line-per-partition topic
    verified: Verification | None = None

    @property
    def marginal_s(self) -> float | None:
        return None if self.baseline is None else self.measurement.wall_s - self.baseline.wall_s


def run_kcat(launcher: Launcher, bootstrap: str, topic: str, log: Path,
             options: list[str] = KCAT_CONSUMER_OPTIONS, repeats: int = KCAT_REPEATS) -> Measurement:
    """The fastest of ``repeats`` runs of kcat reading ``topic`` to /dev/null, with the given fetch options."""
    best: Measurement | None = None
    for _ in range(repeats):
        m = launcher.run(["kcat", "-C", "-b", bootstrap, "-t", topic, *options,
                          "-e", "-q", "-o", "beginning", "-f", "%s\n"],
                         timeout_s=KCAT_TIMEOUT_S, stdout=None, stderr=log)
        if m.exit_code != 0:
            raise BenchError(f"kcat over {topic} exited {m.exit_code}; see {log}")
        if best is None or m.wall_s < best.wall_s:
            best = m
    return best


SLUICE_FIXED_ENV = {
    "SLUICE_STOP_AT_END": "true",
    "SLUICE_HTTP_PORT": "0",
    "SLUICE_SESSION_TIMEOUT_MS": "6000",
    "SLUICE_WINDOW_MS": "60000",
    # A day: the corpus is produced within seconds, so no record can be late.
    "SLUICE_ALLOWED_LATENESS_MS": str(24 * 3600 * 1000),
}


def run_sluice(launcher: Launcher, binary: Path, bootstrap: str, name: str, input_topic: str, wal: bool, work: Path,
               timeout_s: float, log_level: str) -> Measurement:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_", "KAFKA_"))}
    env.update(SLUICE_FIXED_ENV)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SLUICE_INPUT_TOPICS": input_topic,
        "SLUICE_GROUP_ID": f"bench-{name}-{os.getpid()}-{time.time_ns()}",
        "SLUICE_COUNTS_TOPIC": f"counts-{name}",
        "SLUICE_WINDOWS_TOPIC": f"windows-{name}",
        "SLUICE_WAL": "true" if wal else "false",
        "SLUICE_CHECKPOINT_DIR": str(work / f"checkpoint-{name}"),
        "SLUICE_LOG_LEVEL": log_level,
    })
    # Pass-through for tuning experiments: BENCH_SLUICE_X=v sets SLUICE_X=v for every run.
    env.update({k[len("BENCH_"):]: v for k, v in os.environ.items() if k.startswith("BENCH_SLUICE_")})
    log = work / f"sluice-{name}.log"
    m = launcher.run([str(binary)], timeout_s=timeout_s, stdout=log, stderr="stdout", env=env, cwd=work)
    if m.exit_code != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise BenchError(f"sluice run {name} exited {m.exit_code}; last lines of {log}:\n" + "\n".join(tail))
    return m


def run_name(name: str, attempt: int) -> str:
    """The name of one attempt of a run (its output topics and checkpoint directory)."""
    return name if attempt == 1 else f"{name}-{attempt}"


@dataclass
class SluiceRun:
    """One configuration of ``run_sluice_alternately``: its name, input topic, write-ahead log and expected counts."""
    name: str
    input_topic: str
    wal: bool
    truth: dict[str, int]


class KcatRounds:
    """kcat over the input, tuned and with librdkafka's default fetch waits, once per round of
    ``run_sluice_alternately``, so that it is timed in the same minutes as sluice; each is the fastest of its runs."""

    def __init__(self, launcher: Launcher, bootstrap: str, topic: str, log: Path):
        self.runs: dict[str, list[Measurement]] = {"kcat": [], "kcat default fetch": []}
        self._run = lambda options: run_kcat(launcher, bootstrap, topic, log, options, repeats=1)

    def __call__(self) -> None:
        self.runs["kcat"].append(self._run(KCAT_CONSUMER_OPTIONS))
        self.runs["kcat default fetch"].append(self._run([]))

    def fastest(self, name: str) -> Measurement:
        return min(self.runs[name], key=lambda m: m.wall_s)


def run_sluice_alternately(launcher: Launcher, binary: Path, bootstrap: str, runs: list[SluiceRun], work: Path,
                           args: argparse.Namespace, each_round: Callable[[], None] = lambda: None
                           ) -> list[tuple[Measurement, Verification]]:
    """``args.repeats`` rounds of ``each_round`` (the kcat runs) and one run of each configuration in turn, every run
    verified; per configuration the median wall time, the median CPU time and the highest peak RSS of its runs (RSS
    samples: the median-wall run's).

    A run's wall time depends on where the group join leaves it between two batch boundaries (up to one batch
    interval), and this kind of machine's speed drifts by up to half within minutes: one run is a noisy measure,
    and so are runs of one configuration after another's. Rounds put the configurations (and kcat) side by side in
    time, and the median of each metric is a typical one.
    """
    results: list[list[tuple[Measurement, Verification]]] = [[] for _ in runs]
    for attempt in range(1, args.repeats + 1):
        each_round()
        for run, outcomes in zip(runs, results):
            attempt_name = run_name(run.name, attempt)
            m = run_sluice(launcher, binary, bootstrap, attempt_name, run.input_topic, run.wal, work, args.timeout,
                           args.log_level)
            print(f"  {run.name} {attempt}: {m.wall_s:.2f} s wall, {m.cpu_s:.2f} s CPU; verifying ...", flush=True)
            check = verify(bootstrap, f"counts-{attempt_name}", f"windows-{attempt_name}", args.partitions, run.truth,
                           work)
            outcomes.append((m, check))
    combined = []
    for outcomes in results:
        measurements = [m for m, _ in outcomes]
        by_wall = sorted(measurements, key=lambda m: m.wall_s)
        typical = by_wall[len(by_wall) // 2]
        median = Measurement(
            wall_s=typical.wall_s, cpu_s=statistics.median(m.cpu_s for m in measurements),
            max_rss_mb=max(m.max_rss_mb for m in measurements), exit_code=0, rss_samples=typical.rss_samples,
            all_walls=[m.wall_s for m in measurements], all_cpus=[m.cpu_s for m in measurements])
        failed = next((c for _, c in outcomes if not c.ok), None)
        combined.append((median, failed or outcomes[0][1]))
    return combined


# --------------------------------------------------------------------------- report


def fmt_rate(count: int, seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "n/a"
    rate = count / seconds
    return f"{rate / 1e6:.2f} M" if rate >= 1e6 else f"{rate / 1e3:.0f} k"


def table(rows: list[Row], corpus: Corpus) -> list[list[str]]:
    kcat_marginal = next((r.marginal_s for r in rows if r.name == "kcat"), None)
    default_marginal = next((r.marginal_s for r in rows if r.name == "kcat default fetch"), None)
    header = ["run", "wall s", "marginal s", "records/s", "words/s (marginal)", "x kcat (marginal)",
              "x kcat default fetch", "peak RSS MB", "RSS by quarter MB", "CPU s", "CPU s per M words (marginal)",
              "verified"]
    body = [header]

    def ratio(marginal: float | None, reference: float | None) -> str:
        return "-" if marginal is None or not reference or reference <= 0 else f"{marginal / reference:.2f}"

    for r in rows:
        m, marginal = r.measurement, r.marginal_s
        cpu_per_m = "-" if r.baseline is None else f"{(m.cpu_s - r.baseline.cpu_s) / (corpus.words / 1e6):.3f}"
        verified = "-" if r.verified is None else ("yes" if r.verified.ok else "NO")
        body.append([
            r.name,
            f"{m.wall_s:.2f}",
            "-" if marginal is None else f"{marginal:.2f}",
            fmt_rate(corpus.lines, marginal),
            fmt_rate(corpus.words, marginal),
            ratio(marginal, kcat_marginal),
            ratio(marginal, default_marginal),
            f"{m.max_rss_mb:.0f}",
            m.rss_by_quarter(),
            f"{m.cpu_s:.2f}",
            cpu_per_m,
            verified,
        ])
    return body


def render_text(body: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in body) for i in range(len(body[0]))]
    lines = []
    for n, row in enumerate(body):
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(body: list[list[str]]) -> str:
    out = ["| " + " | ".join(body[0]) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(body[0]))) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in body[1:]]
    return "\n".join(out)


def git_revision() -> str:
    try:
        rev = run_checked(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], timeout_s=10, what="git").strip()
        dirty = run_checked(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                            timeout_s=10, what="git").strip()
        return rev + ("+dirty" if dirty else "")
    except BenchError:
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def publish(file_name: str, text: str) -> None:
    """Prints a result table and writes it to ``bench/results/<file_name>``."""
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / file_name).write_text(text)


def exit_with(main: Callable[[], int], what: str) -> None:
    """Runs a benchmark's ``main`` as the program, a ``BenchError`` reported as ``what: error`` with exit code 1."""
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"{what}: {error}", file=sys.stderr)
        sys.exit(1)


def machine_info(load_at_start: tuple[float, float, float], sluice: Path) -> list[tuple[str, str]]:
    cpu = cpu_model()
    kcat_version = "unknown"
    try:
        kcat_version = next((l.strip() for l in run_checked(["kcat", "-V"], timeout_s=10, what="kcat -V").splitlines()
                             if l.startswith("Version")), kcat_version)
    except BenchError:
        pass
    return [
        ("date", datetime.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("git revision (work tree when run)", git_revision()),
        ("sluice binary", f"{sluice} (built {datetime.datetime.fromtimestamp(sluice.stat().st_mtime).astimezone().isoformat(timespec='seconds')})"),
        ("nproc", str(os.cpu_count())),
        ("cpu", cpu),
        ("kernel", platform.release()),
        ("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load_at_start)),
        ("kcat", kcat_version),
        ("python", platform.python_version()),
    ]


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000, help="input lines (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--partitions", type=int, default=16,
                        help="partitions of every topic (default 16; the mock keeps only 5 MiB per partition)")
    parser.add_argument("--compression", default="lz4", choices=["lz4", "none"],
                        help="compression of the loaded input (default lz4)")
    parser.add_argument("--skip-wal-off", action="store_true", help="skip the run with SLUICE_WAL=false")
    parser.add_argument("--repeats", type=int, default=5,
                        help="rounds of sluice runs, one per configuration each; medians are reported (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, input, output)")
    parser.add_argument("--bin-dir", type=Path, default=REPO / ".build" / "release",
                        help="where sluice and sluice-broker are (default .build/release)")
    parser.add_argument("--timeout", type=float, default=900, help="limit for one sluice run, seconds (default 900)")
    parser.add_argument("--log-level", default="info", help="SLUICE_LOG_LEVEL for the runs (default info)")
    parser.add_argument("--no-results", action="store_true", help="print the table only; write no results file")
    args = parser.parse_args()

    sluice, broker_binary = args.bin_dir / "sluice", args.bin_dir / "sluice-broker"
    for binary in (sluice, broker_binary):
        if not os.access(binary, os.X_OK):
            raise BenchError(f"{binary} not found: build first (swift build -c release, or make bench)")
    if shutil.which("kcat") is None:
        raise BenchError("kcat not found (apt-get install kcat, or make deps)")

    load_at_start = os.getloadavg()
    runs = ["empty", "tiny", "wal-on"] + ([] if args.skip_wal_off else ["wal-off"])
    topics = {INPUT_TOPIC: args.partitions, EMPTY_TOPIC: args.partitions, TINY_TOPIC: args.partitions}
    for name in runs:
        for attempt in range(1, args.repeats + 1):
            topics[f"counts-{run_name(name, attempt)}"] = args.partitions
            topics[f"windows-{run_name(name, attempt)}"] = args.partitions

    work = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    broker: Broker | None = None
    launcher = Launcher()  # before the corpus makes this process big: see LAUNCHER
    try:
        print(f"work dir: {work}", flush=True)
        rss_floor_mb = launcher.run(["true"], timeout_s=10).max_rss_mb
        started = time.perf_counter()
        corpus = generate_corpus(work / "lines.txt", args.lines, args.seed)
        print(f"generated {corpus.lines:,} lines, {corpus.words:,} words, {corpus.bytes / 2**20:.1f} MiB, "
              f"{len(corpus.truth):,} distinct words (seed {args.seed}) in {time.perf_counter() - started:.1f} s",
              flush=True)

        broker = Broker(broker_binary, topics, work / "broker.log")
        print(f"broker at {broker.bootstrap} ({args.partitions} partitions per topic)", flush=True)

        started = time.perf_counter()
        load_lines(broker.bootstrap, INPUT_TOPIC, corpus.path, args.partitions, work, args.compression)
        marks = watermarks(broker.bootstrap, INPUT_TOPIC, args.partitions)
        retained = sum(high - low for low, high in marks)
        print(f"loaded in {time.perf_counter() - started:.1f} s; watermarks hold {retained:,} records; "
              f"per partition {min(h - l for l, h in marks):,}..{max(h - l for l, h in marks):,}", flush=True)
        if retained != corpus.lines or any(low != 0 for low, _ in marks):
            raise BenchError(
                f"the input topic holds {retained:,} records (low watermarks {[l for l, _ in marks]}), "
                f"not the {corpus.lines:,} lines produced: the mock broker dropped data (it keeps only "
                f"{MOCK_RETENTION_BYTES // 2**20} MiB per partition). Use more --partitions or fewer --lines.")

        # The baseline input: the corpus's first lines, one per partition.
        tiny_path = work / "tiny.txt"
        with open(corpus.path, encoding="utf-8") as lines:
            tiny_lines = list(itertools.islice(lines, args.partitions))
        tiny_path.write_text("".join(tiny_lines), encoding="utf-8")
        tiny_truth = dict(collections.Counter(w.lower() for line in tiny_lines for w in line.split()))
        load_lines(broker.bootstrap, TINY_TOPIC, tiny_path, args.partitions, work)
        if sum(h - l for l, h in watermarks(broker.bootstrap, TINY_TOPIC, args.partitions)) != len(tiny_lines):
            raise BenchError(f"the {TINY_TOPIC} topic does not hold the {len(tiny_lines)} lines produced")

        rows: list[Row] = []
        print("timing kcat over the empty topic and the one-line-per-partition topic ...", flush=True)
        kcat_empty = run_kcat(launcher, broker.bootstrap, EMPTY_TOPIC, work / "kcat-empty.log")
        kcat_tiny = run_kcat(launcher, broker.bootstrap, TINY_TOPIC, work / "kcat-tiny.log")
        # As a new user runs it: librdkafka's default fetch waits.
        kcat_default_tiny = run_kcat(launcher, broker.bootstrap, TINY_TOPIC, work / "kcat-default-tiny.log", [])
        kcat = KcatRounds(launcher, broker.bootstrap, INPUT_TOPIC, work / "kcat.log")

        print("timing sluice over the empty topic ...", flush=True)
        sluice_empty = run_sluice(launcher, sluice, broker.bootstrap, "empty", EMPTY_TOPIC, True, work, args.timeout,
                                  args.log_level)
        empty_check = verify(broker.bootstrap, "counts-empty", "windows-empty", args.partitions, {}, work)
        rows.append(Row("sluice (empty topic)", sluice_empty, verified=empty_check))

        print("timing kcat over the input, sluice over the one-line-per-partition topic and the input, in rounds ...",
              flush=True)
        configurations = [SluiceRun("tiny", TINY_TOPIC, True, tiny_truth)] + [
            SluiceRun(name, INPUT_TOPIC, name == "wal-on", corpus.truth) for name in runs[2:]]
        (sluice_tiny, tiny_check), *measured = run_sluice_alternately(
            launcher, sluice, broker.bootstrap, configurations, work, args, each_round=kcat)
        rows[:0] = [Row("kcat (empty topic)", kcat_empty), Row(f"kcat ({args.partitions}-line baseline)", kcat_tiny),
                     Row("kcat", kcat.fastest("kcat"), baseline=kcat_tiny),
                     Row("kcat default fetch", kcat.fastest("kcat default fetch"), baseline=kcat_default_tiny)]
        rows.append(Row(f"sluice ({args.partitions}-line baseline)", sluice_tiny, verified=tiny_check))
        for configuration, (m, check) in zip(configurations[1:], measured):
            rows.append(Row(f"sluice {configuration.name.replace('-', ' ')}", m, baseline=sluice_tiny, verified=check))

        body = table(rows, corpus)
        print()
        print(render_text(body))
        notes = [f"{r.name}: {r.verified.summary}" for r in rows if r.verified is not None]
        notes += [f"{r.name}: RSS by tenth of the run (MB): {r.measurement.rss_profile(10)}"
                  for r in rows if r.name.startswith("sluice wal")]
        notes += [f"{r.name}: wall / CPU times of the runs in order (s): {r.measurement.runs_in_order()}"
                  for r in rows if len(r.measurement.all_walls) > 1]
        mismatch_lines = [f"{r.name}: {d}" for r in rows if r.verified is not None for d in r.verified.details]
        print()
        for line in notes + mismatch_lines:
            print(line)

        if not args.no_results:
            write_results(body, notes, mismatch_lines, corpus, args, marks, load_at_start, rss_floor_mb)
        return 0 if all(r.verified is None or r.verified.ok for r in rows) else 1
    finally:
        launcher.close()
        if broker is not None:
            broker.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def write_results(body: list[list[str]], notes: list[str], mismatches: list[str], corpus: Corpus,
                  args: argparse.Namespace, marks: list[tuple[int, int]], load_at_start,
                  rss_floor_mb: float) -> None:
    per_partition = [high - low for low, high in marks]
    tuning = {k[len("BENCH_"):]: v for k, v in os.environ.items() if k.startswith("BENCH_SLUICE_")}
    settings = {**SLUICE_FIXED_ENV, **tuning}
    text = [
        "# sluice benchmark",
        "",
        "Generated by `bench/bench.py` (`make bench`). Marginal = wall time over the input minus wall time "
        f"of the same program over a {args.partitions}-line baseline topic, one line per partition (start-up, "
        "the mock's 3 s group join, one batch, checkpoint, shut-down); an empty topic is no baseline, since "
        "sluice exits at once without joining the group when the end offsets are 0 (the empty-topic rows are "
        "shown for information). Records/s and words/s are over the marginal time; \"x kcat\" = marginal "
        "time / kcat's marginal time. CPU = user + sys, peak RSS = ru_maxrss, both from wait4 on the child; "
        f"peak RSS has a floor of {rss_floor_mb:.0f} MB (the launcher's own RSS, which Linux counts in a forked "
        "child's ru_maxrss: `/bin/true` measures that much). RSS by quarter = the highest VmRSS sampled (every "
        "100 ms) in each quarter of the run's wall time: flat numbers mean memory does not grow with the input.",
        "",
        f"kcat: `kcat -C -e -q -o beginning -f '%s\\n' {' '.join(KCAT_CONSUMER_OPTIONS)}` to /dev/null, fastest of "
        f"{args.repeats} runs, one in each round of the sluice runs (the two options remove 0.5-1.5 s of idle fetch "
        "waits, in 0.5 s steps, from every run); "
        "kcat default fetch: the same without the two options, as a new user runs it. "
        f"sluice: {args.repeats} rounds of one run of the baseline and of each configuration in turn, every run "
        "verified; default fetch settings; the median wall time, the median CPU time and the highest peak RSS of "
        "each configuration's runs. Its wall time includes waiting for its batch boundaries "
        "(`SLUICE_BATCH_INTERVAL_MS`, default 1000): where the group join leaves a run between two boundaries "
        "moves it by up to one interval, and the machine's speed drifts within minutes, hence rounds and medians.",
        "",
        render_markdown(body),
        "",
        "## Input",
        "",
        f"- {corpus.lines:,} lines, {corpus.words:,} words, {corpus.bytes / 2**20:.1f} MiB, "
        f"{len(corpus.truth):,} distinct words; seed {args.seed}; Zipf s = {ZIPF_S} over {VOCABULARY_SIZE:,} words, "
        f"{WORDS_PER_LINE[0]}-{WORDS_PER_LINE[1]} words a line, mixed case",
        f"- topic `{INPUT_TOPIC}`: {args.partitions} partitions, line i to partition i mod {args.partitions}, "
        f"loaded with `kcat -P -z {args.compression}`; "
        f"records per partition {min(per_partition):,}..{max(per_partition):,} (all retained: low watermarks 0)",
        f"- sluice settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items())
        + "; fresh `SLUICE_GROUP_ID` and `SLUICE_CHECKPOINT_DIR` per run; other settings default",
        "",
        "## Verification",
        "",
        *[f"- {n}" for n in notes],
        *([""] + ["Mismatches (first of each kind):", ""] + [f"- {m}" for m in mismatches] if mismatches else []),
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in machine_info(load_at_start, args.bin_dir / "sluice")],
        "",
    ]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    content = "\n".join(text)
    # The default input's results are latest.md; another compression's go to a file of their own.
    suffix = "" if args.compression == "lz4" else f"-{args.compression}"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + suffix
    latest = f"latest{suffix}.md"
    (RESULTS_DIR / f"{stamp}.md").write_text(content)
    (RESULTS_DIR / latest).write_text(content)
    print(f"\nwrote {RESULTS_DIR / latest} and {RESULTS_DIR / (stamp + '.md')}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)

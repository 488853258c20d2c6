#!/usr/bin/env bash
# One command for the whole benchmark suite on a fresh machine: builds the release binary,
# installs the Python baseline's one dependency, runs every section and prints the table.
# Pass-through flags: --calls N --runs R --memory-calls M --skip-python
# `bench/run.sh --peers [flags]` runs bench/peers.py instead (callvault against dlt and the Python
# baseline on one simulator; flags: python3 bench/peers.py --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ "${1:-}" = "--peers" ]; then
    shift
    python3 -m pip install --quiet -r bench/requirements.txt -r bench/peers-requirements.txt
    cargo build --release --quiet
    exec python3 -W ignore bench/peers.py "$@"
fi
python3 -m pip install --quiet -r bench/requirements.txt
cargo build --release --quiet
cargo bench --no-run --quiet --bench store
python3 bench/bench.py "$@"

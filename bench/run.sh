#!/usr/bin/env bash
# One command for the whole benchmark suite on a fresh machine: builds the release binary,
# installs the Python baseline's one dependency, runs every section and prints the table.
# Pass-through flags: --calls N --runs R --memory-calls M --skip-python
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
python3 -m pip install --quiet -r bench/requirements.txt
cargo build --release --quiet
cargo bench --no-run --quiet --bench store
python3 bench/bench.py "$@"

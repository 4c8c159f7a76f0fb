#!/usr/bin/env bash
# The daily loop's Airflow DAG (pipeline/airflow/starcast_daily.py) run once
# by a real Airflow 3 from PyPI (installed by setup.sh --test) against
# loopback stand-ins of the horoscope sites (pipeline/airflow/check_dag.py).
# Runs the starcast in STARCAST_BIN (scripts/test.sh passes its debug
# build), else builds and runs the release. Usage: scripts/check-airflow.sh [SECONDS]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT/scripts/setup.sh" --test
"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data" >/dev/null
bin=${STARCAST_BIN:-}
if [[ -z "$bin" ]]; then
  step "building starcast (release)"
  (cd "$ROOT" && cargo build -q --release -p starcast-server --bin starcast)
  bin="$CARGO_TARGET_DIR/release/starcast"
fi
step "one run of the starcast_daily DAG with Airflow $(PYTHONWARNINGS=ignore "$AIRFLOW" version 2>/dev/null | tail -1)"
python3 "$ROOT/pipeline/airflow/check_dag.py" "$bin" "${1:-1200}"

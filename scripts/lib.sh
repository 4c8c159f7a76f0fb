# Shared settings for the scripts; sourced, not run.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/starcast-target}
# Incremental caches help editing, not scripted builds, and they grow by
# gigabytes per change in the shared target folder.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
SITE=${STARCAST_SITE:-$ROOT/target/site}
# The S3-compatible server the storage tests start (setup.sh --test installs it).
export MOTO_SERVER=${MOTO_SERVER:-$HOME/.cache/starcast-tools/moto-venv/bin/moto_server}
export MLFLOW=${MLFLOW:-$HOME/.cache/starcast-tools/mlflow-venv/bin/mlflow}
# The Airflow the daily loop's DAG is checked with (setup.sh --test installs it).
export AIRFLOW=${AIRFLOW:-$HOME/.cache/starcast-tools/airflow-venv/bin/airflow}
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

# Runs a command (a bench binary) with the settings `starcast` gives itself
# at start (server/src/main.rs): candle's element-wise pool idle, and
# mimalloc keeping the memory it frees. Usage: as_starcast cargo bench ...
as_starcast() { CANDLE_NUM_THREADS=1 MIMALLOC_PURGE_DELAY=-1 "$@"; }

# The virtual environment the benchmarks' peers (PyTorch, transformers)
# run from, outside the repository; installs `packages` when `modules`
# don't import. Usage: peer_venv "module, ..." package ...
PEER_VENV="$HOME/.cache/starcast-peers/torch-venv"
peer_venv() {
  local modules=$1
  shift
  [[ -x "$PEER_VENV/bin/python" ]] || python3 -m venv "$PEER_VENV"
  if ! "$PEER_VENV/bin/python" -c "import $modules" 2>/dev/null; then
    step "installing $* into $PEER_VENV"
    "$PEER_VENV/bin/pip" install --quiet "$@"
  fi
}

# The release starcast the web benchmarks run, built with the site when
# either is missing. Usage: bin=$(release_starcast)
release_starcast() {
  local bin="$CARGO_TARGET_DIR/release/starcast"
  [[ -x "$bin" && -f "$SITE/pkg/starcast_bg.wasm" ]] || "$ROOT/scripts/build.sh" release >&2
  echo "$bin"
}

# podman as these machines run it: crun refuses their hybrid cgroup setup,
# and podman's default limits exceed what they allow. Usage: pod build ...
pod() {
  local command=$1
  shift
  case $command in
    build | run | create)
      podman --runtime runc "$command" --ulimit nofile=16384:16384 --ulimit nproc=8192:8192 "$@" ;;
    *) podman --runtime runc "$command" "$@" ;;
  esac
}

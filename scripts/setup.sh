#!/usr/bin/env bash
# Installs what building Starcast needs and is missing: the wasm32 target,
# wasm-bindgen-cli at exactly the version in Cargo.lock, wasm-opt, and with
# --test Chromium, PostgreSQL, the browser-test packages, moto (an S3-compatible
# server), MLflow (its tracking server) and Apache Airflow 3 (to run the
# daily loop's DAG), all from PyPI in virtual environments under
# ~/.cache/starcast-tools.
# Safe to rerun: it skips what is there.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

with_tests=false
[[ "${1:-}" == "--test" ]] && with_tests=true

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

wanted=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [[ "$have" != "$wanted" ]]; then
  step "installing wasm-bindgen-cli $wanted (the version in Cargo.lock; a few minutes)"
  cargo install wasm-bindgen-cli --version "$wanted" --force
fi

if [[ ! -x "$ROOT/tools/node_modules/.bin/wasm-opt" ]]; then
  step "installing wasm-opt (binaryen, from npm) to shrink the release bundle"
  (cd "$ROOT/tools" && npm install --no-audit --no-fund --loglevel=error)
fi

if $with_tests; then
  # Debian's packages: Chromium for the browser tests, PostgreSQL for the
  # records tests (they start a cluster of their own on loopback).
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  if ((${#missing[@]})); then
    step "installing ${missing[*]} (Debian packages)"
    sudo_cmd=""
    [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [[ ! -d "$ROOT/e2e/node_modules/playwright-core" ]]; then
    step "installing the browser-test packages"
    (cd "$ROOT/e2e" && npm install --no-audit --no-fund --loglevel=error)
  fi
  if [[ ! -x "$MOTO_SERVER" ]]; then
    step "installing moto, an S3-compatible server for the storage tests (PyPI)"
    python3 -m venv "$(dirname "$(dirname "$MOTO_SERVER")")"
    "$(dirname "$MOTO_SERVER")/pip" install --quiet "moto[server]==5.*"
  fi
  if [[ ! -x "$MLFLOW" ]]; then
    step "installing MLflow, whose tracking server the training tests log to (PyPI)"
    python3 -m venv "$(dirname "$(dirname "$MLFLOW")")"
    "$(dirname "$MLFLOW")/pip" install --quiet "mlflow==3.*"
  fi
  if [[ ! -x "$AIRFLOW" ]]; then
    step "installing Apache Airflow 3, which runs the daily loop's DAG in its check (PyPI)"
    python3 -m venv "$(dirname "$(dirname "$AIRFLOW")")"
    "$(dirname "$AIRFLOW")/pip" install --quiet "apache-airflow==3.*"
  fi
fi

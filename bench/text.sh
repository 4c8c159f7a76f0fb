#!/usr/bin/env bash
# Horoscope generation speed beside llama.cpp and transformers: the same
# SmolLM2-135M-Instruct Q4_1 GGUF (dequantized to F32 for Starcast's Llama
# and for transformers) and the same Gemma 3 270M Q4_K_M GGUF (the Russian
# model) beside llama.cpp, the same threads, one run. llama.cpp is built
# from its public source (vendored in the llama-cpp-python sdist on PyPI)
# under ~/.cache/starcast-peers, outside the repository. Usage: bench/text.sh
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

threads=${THREADS:-2}
model="$ROOT/data/models/smollm2-135m-instruct"
gemma="$ROOT/data/models/gemma-3-270m"
peers="$HOME/.cache/starcast-peers"
llama_bench="$peers/llama-bench"
llama_version=0.3.36

"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data"

if [[ ! -x "$llama_bench" ]]; then
  step "building llama.cpp (llama-cpp-python $llama_version sdist) into $peers"
  command -v cmake >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake >/dev/null; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # The sdist's metadata step needs its build backend, not a compiler.
  python3 -m pip install --quiet scikit-build-core
  python3 -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
    "llama-cpp-python==$llama_version" -d "$work"
  tar xzf "$work/llama_cpp_python-$llama_version.tar.gz" -C "$work"
  src="$work/llama_cpp_python-$llama_version/vendor/llama.cpp"
  # GGML_NATIVE (GCC 12's -march=native) builds a binary that dies with
  # "Illegal instruction" on CPUs newer than the compiler; each instruction
  # set the CPU reports is turned on by name instead.
  sets=()
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C avx512f:AVX512 avx512vbmi:AVX512_VBMI \
    avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16 avx_vnni:AVX_VNNI amx_tile:AMX_TILE \
    amx_int8:AMX_INT8 amx_bf16:AMX_BF16; do
    grep -qw "${pair%%:*}" /proc/cpuinfo && sets+=("${pair#*:}")
  done
  options=()
  for set in "${sets[@]}"; do options+=("-DGGML_$set=ON"); done
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF \
    "${options[@]}" >/dev/null
  cmake --build "$work/build" --target llama-bench -j "$(nproc)" >"$work/build.log" 2>&1 ||
    { tail -n 40 "$work/build.log"; exit 1; }
  mkdir -p "$peers"
  cp "$work/build/bin/llama-bench" "$llama_bench"
  echo "${sets[*]}" >"$llama_bench.sets"
fi
echo "llama.cpp built with: $(cat "$llama_bench.sets" 2>/dev/null || echo 'unknown instruction sets (built before this script named them)')"

cd "$ROOT"
for folder in "$model" "$gemma"; do
  step "Starcast: $(basename "$folder") as served, $threads threads"
  RAYON_NUM_THREADS=$threads as_starcast cargo bench -p starcast-model --bench text_generation -- "$folder" 5
  step "llama.cpp llama-bench: $(basename "$folder"), $threads threads"
  "$llama_bench" -m "$folder/model.gguf" -t "$threads" -p 64 -n 64 -r 5 -o md
done

step "transformers on the F32 weights, $threads threads"
peer_venv "transformers, gguf" torch transformers gguf
OMP_NUM_THREADS=$threads "$PEER_VENV/bin/python" bench/text.py "$model" 5 "$threads" 2>/dev/null

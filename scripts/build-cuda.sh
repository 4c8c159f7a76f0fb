#!/usr/bin/env bash
# Builds the `starcast` binary with the `cuda` feature, for an NVIDIA GPU
# machine (default: Hopper, H100/H200). This machine needs no GPU and no
# CUDA install: the compiler, headers and libraries come from NVIDIA's
# packages on PyPI, pinned to CUDA 13.0 so the kernels run on driver 580+.
# Usage: scripts/build-cuda.sh [CARGO ARGUMENTS]
# With no arguments, builds `starcast` and prints its path; copy it to the
# GPU machine and run it there with CUDA 13's libraries on LD_LIBRARY_PATH
# (README: "Training and serving on a GPU"). With arguments, runs `cargo ARGUMENTS`
# in the same environment (e.g. `bench --no-run -p starcast-train
# --features cuda --bench fine_tune`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

TOOLKIT=${STARCAST_CUDA_TOOLKIT:-$HOME/.cache/starcast-cuda/toolkit}
CUDA=$TOOLKIT/nvidia/cu13
# A separate target folder: the CUDA build's feature set would otherwise
# evict the CPU build's artifacts from the shared one.
export CARGO_TARGET_DIR=${STARCAST_CUDA_TARGET:-$HOME/.cache/starcast-target-cuda}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}

if [[ ! -x $CUDA/bin/nvcc ]]; then
  step "installing the CUDA 13.0 compiler and libraries into $TOOLKIT"
  python3 -m pip install --quiet --no-deps --target "$TOOLKIT" \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
fi

# The wheels ship versioned libraries only; the linker looks for lib<name>.so.
link=$CUDA/link
mkdir -p "$link"
for lib in cublas cublasLt cudart curand nvrtc; do
  ln -sf "$(ls "$CUDA"/lib/lib$lib.so.* | head -n1)" "$link/lib$lib.so"
done
# libcuda belongs to the driver, which only the GPU machine has. Link
# against a stand-in that defines the driver API's names under the
# driver's soname; the real library is loaded at run time.
if [[ ! -f $link/libcuda.so || ! -s $link/cuda-stub.c ]]; then
  step "making a link-time stand-in for the driver's libcuda.so.1"
  cudarc=$(cargo metadata --format-version 1 --features starcast-server/cuda --manifest-path "$ROOT/Cargo.toml" |
    python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))')
  grep -oE 'pub unsafe fn cu[A-Za-z0-9_]+' "$(dirname "$cudarc")/src/driver/sys/mod.rs" |
    awk '{print "void " $4 "(void) {}"}' | sort -u >"$link/cuda-stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/cuda-stub.c"
fi

export CUDA_ROOT=$CUDA
export PATH="$CUDA/bin:$PATH"
export LIBRARY_PATH="$link${LIBRARY_PATH:+:$LIBRARY_PATH}"
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$link"

cd "$ROOT"
if (($#)); then
  cargo "$@"
else
  step "building starcast with CUDA (compute capability $CUDA_COMPUTE_CAP) into $CARGO_TARGET_DIR"
  cargo build --release -p starcast-server --features cuda >&2
  echo "$CARGO_TARGET_DIR/release/starcast"
fi

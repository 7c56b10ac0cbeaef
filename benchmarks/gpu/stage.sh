#!/usr/bin/env bash
# The GPU machine's software: vLLM 0.34.0 on torch 2.14.0, which its image (Python 3.12, torch 2.11.0+cu130,
# no network) lacks, carried in parts that each fit one call (64 MiB with the working tree).
#
#   bash benchmarks/gpu/stage.sh build            # here, in the repository root: .gpu/partNN (~10 min, 2 cores)
#   bash benchmarks/gpu/stage.sh pack             # here: the parts again from the staged tree (after an edit)
#   bash benchmarks/gpu/stage.sh put .gpu/partNN  # there, carrying .gpu/partNN: one call per part, each started
#                                                 # within 30 s of the last (the machine is kept that long)
#   source benchmarks/gpu/stage.sh env            # there, in each later command: unpacks once, sets the paths
#
# What travels, and why:
# - torch 2.14.0 (vLLM 0.34 pins it) without its headers, cmake files and lazily loaded linalg library; it
#   runs on the image's CUDA 13.0 libraries (cuBLAS 13.1.0, cuDNN 9.19, cuSPARSELt 0.8.0: torch 2.14 asks
#   for 13.1.1 / 9.24 / 0.8.1 and links no symbol the older ones lack) and the image's NCCL 2.28.9, which
#   lacks 11 functions torch 2.14 links to: nccl_compat.c stubs them (never called on one GPU; see there).
#   Checked here on CPU with exactly those library versions: torch imports with the stubs, fails without.
# - triton 3.8.0 (torch 2.14's) without the profilers' CUPTI libraries and the Blackwell ptxas.
# - vLLM 0.34.0 without what a Llama on Hopper never loads (FlashAttention 2, the MLA/MoE/DeepGEMM and
#   Blackwell kernels, the Rust router); flashinfer-python 0.7.4 as Python only (vLLM pins 0.7.3, which the
#   package index here lacks; installed with --no-deps; vLLM imports it, the engine runs with
#   VLLM_USE_FLASHINFER_SAMPLER=0 and FlashAttention 3, so none of its kernels is compiled; its JIT sources
#   are left out, its other modules stay: vLLM imports from flashinfer.experimental); torchvision 0.29.0 (the
#   image's 0.26 is built for torch 2.11). vllm_overlay/ replaces one vLLM module that imports the CuTe DSL
#   (nvidia-cutlass-dsl, not carried) on every engine start for a model we never run (see that file).
# - cuDNN: the image's 9.19 is older than torch 2.14's 9.24, and torch refuses it the first time anything asks
#   for cuDNN's version (varlen attention does, in training); env sets PYTORCH_SKIP_CUDNN_COMPATIBILITY_CHECK=1
#   (the only cuDNN kernel in our runs is varlen attention, which torch 2.14 allows from cuDNN 9.18).
# - The Python packages vLLM 0.34 imports on the offline, async and server paths that the image lacks
#   (deps312.txt), what our R-SFT needs for the stand-in guard (trl, datasets, liger-kernel; the image has
#   pyarrow, xxhash) and the pytest plugins the suite's settings name (the image has pytest, pytest-timeout
#   and hypothesis). STAGE_RAY=1 adds Ray 2.60.0 (the audit's two-GPU leg).
# - The benchmarks' inputs (.gpu/assets: the stand-in's training data and tokenizer, the workload).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PART_BYTES=$((59 * 1024 * 1024))

build() {
  cd "$here/../.."
  local out=.gpu wheels=.gpu/wheels site=.gpu/stage/site-packages
  rm -rf "$out/stage" "$out"/part* "$wheels"; mkdir -p "$wheels" "$site" "$out/stage/assets"  # exactly these wheels
  local target=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none)
  local glibc
  for glibc in 39 35 34 31 28 27 24 17 12 5; do target+=(--platform "manylinux_2_${glibc}_x86_64"); done
  target+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64 --platform any)
  local pip=(python3 -m pip download -q --no-deps "${target[@]}" -d "$wheels")
  "${pip[@]}" torch==2.14.0 triton==3.8.0 torchvision==0.29.0 vllm==0.34.0 flashinfer-python==0.7.4 \
    trl==1.16.0 datasets==5.2.0 liger-kernel==0.8.5 multiprocess==0.70.19 \
    pytest-asyncio==1.5.0 pytest-socket==0.8.1
  [ -z "${STAGE_RAY:-}" ] || "${pip[@]}" ray==2.60.0
  "${pip[@]}" -r "$here/deps312.txt"
  python3 -m pip install -q --no-deps --no-compile "${target[@]}" --target "$site" "$wheels"/*.whl
  # Trim what a Llama guard on Hopper never loads (see the header).
  rm -rf "$site"/torch/include "$site"/torch/share "$site"/torch/lib/libtorch_cuda_linalg.so \
    "$site"/triton/backends/nvidia/lib/cupti* "$site"/triton/backends/nvidia/bin/{ptxas-blackwell,nvdisasm,cuobjdump} \
    "$site"/triton/_C/libproton.so "$site"/triton/instrumentation/*TestLib* "$site"/triton/plugins/*Test* \
    "$site"/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so "$site"/vllm/vllm-rs "$site"/vllm/third_party/fmha_sm100 \
    "$site"/vllm/third_party/deep_gemm "$site"/vllm/_moe_C_stable_libtorch.abi3.so "$site"/vllm/_flashmla*_C.abi3.so \
    "$site"/vllm/_flashkda_C.abi3.so "$site"/vllm/_deepselect_C.abi3.so "$site"/vllm/entrypoints/serve/instrumentator/static \
    "$site"/flashinfer/data "$site"/bin
  cp -r "$here/vllm_overlay/vllm/." "$site/vllm/"  # see vllm_overlay/
  find "$site" -name '__pycache__' -prune -exec rm -rf {} +
  gcc -shared -fPIC -O2 -o "$site/libnccl_compat.so" "$here/nccl_compat.c"
  # Inputs: the stand-in's data and tokenizer (standin_assets.py), the workload and Llama-3-layout tokenizer.
  python3 "$here/standin_assets.py" --out "$out/stage/assets/standin"
  python3 "$here/vllm_assets.py" --out "$out/stage/assets"
  pack
}

pack() {  # the staged tree as zstd-compressed parts, each with the manifest; the last also has the wheel that
  # unpacks them there (zstd: xz compresses as tightly but ~6x slower here, and the image has no zstd CLI)
  cd "$here/../.."
  local out=.gpu
  rm -rf "$out"/part*
  tar -C "$out/stage" -cf - site-packages assets | zstd -q -T2 -15 --long=27 > "$out/bundle.tar.zst"
  split -b "$PART_BYTES" -d -a 2 "$out/bundle.tar.zst" "$out/bundle.tar.zst."
  rm "$out/bundle.tar.zst"
  (cd "$out" && sha256sum bundle.tar.zst.* > manifest)
  local chunk part
  for chunk in "$out"/bundle.tar.zst.*; do
    part="$out/part${chunk##*.}"
    mkdir -p "$part" && mv "$chunk" "$part/" && cp "$out/manifest" "$part/"
  done
  if [ "$(du -sb "$part" | cut -f1)" -gt $((60 * 1024 * 1024 - 5600000)) ]; then  # with the wheel and a ~4 MB tree
    part="$out/part$(printf %02d $((10#${part##*part} + 1)))" && mkdir -p "$part" && cp "$out/manifest" "$part/"
  fi
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
    -d "$part" zstandard==0.25.0
  du -sh "$out"/part* && echo "$(ls -d "$out"/part* | wc -l) parts (.gitignore keeps /.gpu/ out of the repository)"
}

put() {  # there: keep one part until all have come
  local part=${1:?usage: stage.sh put .gpu/partNN}
  mkdir -p "$HOME/gpu-stage"
  cp "$part"/* "$HOME/gpu-stage/"
  (cd "$HOME/gpu-stage" && sha256sum -c --ignore-missing --quiet manifest) && ls "$HOME/gpu-stage"
}

env_() {  # there, sourced: unpack once, then the paths and the settings every run needs
  local site=$HOME/gpu/site-packages  # a path naming site-packages: datasets hashes such modules by reference
  if [ ! -f "$HOME/gpu/.unpacked" ]; then
    (cd "$HOME/gpu-stage" && sha256sum -c --quiet manifest) \
      || { echo "stage.sh: parts missing on this machine; run the put calls again" >&2; return 3; }
    mkdir -p "$HOME/gpu"
    python3 -m pip install -q --no-index --no-deps --target "$HOME/gpu/zstd" "$HOME"/gpu-stage/zstandard-*.whl || return 3
    cat "$HOME"/gpu-stage/bundle.tar.zst.* | PYTHONPATH=$HOME/gpu/zstd python3 -c 'import sys, zstandard
zstandard.ZstdDecompressor(max_window_size=1 << 27).copy_stream(sys.stdin.buffer, sys.stdout.buffer)' \
      | tar -x -C "$HOME/gpu" || return 3
    # torch 2.14 finds the CUDA libraries through its RPATH ($ORIGIN/../../nvidia/...): the image's.
    local image
    image=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))') || return 3
    ln -sfn "$image/nvidia" "$site/nvidia"
    touch "$HOME/gpu/.unpacked"
  fi
  export PYTHONPATH=$site:$PWD/packages/core/src:$PWD/training/src${PYTHONPATH:+:$PYTHONPATH}
  export LD_PRELOAD=$site/libnccl_compat.so${LD_PRELOAD:+:$LD_PRELOAD}
  export GPU_ASSETS=$HOME/gpu/assets
  export PYTORCH_SKIP_CUDNN_COMPATIBILITY_CHECK=1  # the image's cuDNN 9.19 under torch 2.14's 9.24 (header)
  export VLLM_USE_FLASHINFER_SAMPLER=0 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # KINDS.md: multicast off
  export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_DATASETS_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1
}

case ${1:-} in
  build) set -euo pipefail; build ;;
  pack) set -euo pipefail; pack ;;
  put) set -euo pipefail; put "${2:-}" ;;
  env) env_ ;;
  *) sed -n 2,9p "${BASH_SOURCE[0]}"; [ "${BASH_SOURCE[0]}" = "$0" ] && exit 2 || return 2 ;;
esac

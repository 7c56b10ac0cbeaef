# Sourced by the session scripts on the device machine after the staging calls (session_stage.sh): vLLM from the
# bundle, Ray from the staged wheel parts, the training wheels (gpu_setup.sh), this checkout's sources.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # KINDS.md: keep multicast off
export VLLM_FLASHINFER_ALLREDUCE_BACKEND=trtllm  # vLLM's default FlashInfer all-reduce (mnnvl) allocates multicast memory
source .vllm/part3/install.sh || return 3
if [ ! -d "$HOME/ray-site/ray" ]; then
  cat "$HOME"/ray-stage/ray.whl.0* > /tmp/ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$HOME/ray-site" \
    /tmp/ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl || return 3
fi
export PYTHONPATH=/tmp/site-packages:$HOME/ray-site:$PWD/packages/core/src:$PWD/training/src:$PYTHONPATH
export PYTHONUNBUFFERED=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
python3 -c 'import vllm, ray; print("vllm", vllm.__version__, "ray", ray.__version__)'

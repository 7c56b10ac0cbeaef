"""Replaces vLLM 0.34.0's module of this name in the GPU machine's staged copy (``stage.sh``).

vLLM 0.34 imports MiniMax-M3's CuTe DSL kernels for their warm-up whenever a CUDA engine starts
(``kernel_warmup.kernel_warmup``), and those import ``cutlass`` (nvidia-cutlass-dsl, ~95 MB with its CUDA 13
libraries, which the bundle does not carry). A Llama guard never runs them: the warm-up does nothing here.
Seen 2026-12-07 on an H100: without this file every engine start fails with ``No module named 'cutlass'``.
"""


def minimax_m3_msa_warmup(worker) -> None:
    return None

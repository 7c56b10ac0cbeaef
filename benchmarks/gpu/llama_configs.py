"""The Llama 3 architectures the GPU benchmarks build with random weights (Llama 3's 128,256-id vocabulary).

One home for them: ``vllm_suite.py``, ``vllm_tp_serving.py``, ``standin_guard.py``, ``vllm_perf.py`` and
``train_throughput.py`` import these (the stand-in guard replaces the vocabulary and the special ids with its
own tokenizer's; the training benchmark names what its committed results were measured without).
"""


def _llama3(
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    *,
    tie_word_embeddings: bool,
    rope_factor: float,
) -> dict:
    """One Llama 3 size; the sizes share the vocabulary, 32 heads of ``hidden_size // 32`` over 8 KV heads,
    the 128k context and llama3 RoPE, whose ``factor`` is each size's own."""
    heads = 32
    return dict(
        vocab_size=128256,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=heads,
        num_key_value_heads=8,
        head_dim=hidden_size // heads,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=128000,
        eos_token_id=128001,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": rope_factor,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )


LLAMA_1B = _llama3(2048, 8192, 16, tie_word_embeddings=True, rope_factor=32.0)  # Llama 3.2 1B
LLAMA_8B = _llama3(4096, 14336, 32, tie_word_embeddings=False, rope_factor=8.0)  # Llama 3.1 8B

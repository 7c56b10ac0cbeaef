"""The Llama 3 architectures the GPU benchmarks build with random weights (Llama 3's 128,256-id vocabulary).

One home for them: ``vllm_suite.py``, ``vllm_tp_serving.py``, ``standin_guard.py``, ``vllm_perf.py`` and
``train_throughput.py`` import these (the stand-in guard replaces the vocabulary and the special ids with its
own tokenizer's; the training benchmark names what its committed results were measured without).
"""


def _llama3(
    *,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    head_dim: int,
    tie_word_embeddings: bool,
    rope_factor: float,
) -> dict:
    """One Llama 3 size (the sizes share the vocabulary, 32 heads over 8 KV heads, 128k context and RoPE)."""
    return dict(
        vocab_size=128256,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=head_dim,
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


LLAMA_1B = _llama3(
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    head_dim=64,
    tie_word_embeddings=True,
    rope_factor=32.0,
)
LLAMA_8B = _llama3(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    head_dim=128,
    tie_word_embeddings=False,
    rope_factor=8.0,
)

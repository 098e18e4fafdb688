"""Write a tiny llama-architecture GGUF model with random weights: python tiny_model.py OUT [--seed N].

The tests' llama.cpp server loads it in a fraction of a second: 2 layers, width 64, a context of 2048
and a SentencePiece vocabulary of 300 tokens (three control tokens, the 256 byte-fallback tokens, and
41 pieces), about half a megabyte. Its words are nonsense; what the server does with them is real:
tokenizing, sampling, streaming, usage counts, the context limit and its errors.

Run with the llama.cpp server's own environment (`jesus dev build` installs gguf and numpy there); the
same seed writes the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gguf
import numpy as np

VOCABULARY = 300
WIDTH = 64
LAYERS = 2
HEADS = 4
FEED_FORWARD = 128
CONTEXT = 2048
PIECES = [
    "▁", "▁the", "▁a", "▁to", "▁of", "▁and", "▁is", "▁it", "▁in", "▁run", "▁model", "▁jesus",
    "▁hello", "▁world", "▁answer", "▁budget", "▁route", "▁agent", "▁tool", "▁call", "▁cost",
    "e", "t", "a", "o", "i", "n", "s", "r", "h", "l", "d", "c", "u", "m", ".", ",", "!", "?", "▁yes", "▁no",
]  # fmt: skip
# Every model the server formats chats for with its own template; this one is plain and role-tagged.
CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}: {{ message['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types: <unk>, <s>, </s>, the 256 bytes, then the pieces."""
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{byte:02X}>" for byte in range(256)), *PIECES]
    assert len(tokens) == VOCABULARY, len(tokens)
    types = [
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        *([gguf.TokenType.BYTE] * 256),
        *([gguf.TokenType.NORMAL] * len(PIECES)),
    ]
    # SentencePiece prefers higher scores when it merges; longer pieces score higher.
    scores = [0.0, 0.0, 0.0, *([0.0] * 256), *(-10.0 + len(piece) for piece in PIECES)]
    return tokens, scores, [int(t) for t in types]


def write(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("jesus-tiny-llama")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(WIDTH)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(WIDTH // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens, scores, types = vocabulary()
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    writer.add_tensor("token_embd.weight", weights(VOCABULARY, WIDTH))
    writer.add_tensor("output_norm.weight", np.ones(WIDTH, dtype=np.float32))
    writer.add_tensor("output.weight", weights(VOCABULARY, WIDTH))
    for layer in range(LAYERS):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(WIDTH, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{prefix}.{name}.weight", weights(WIDTH, WIDTH))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(WIDTH, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", weights(FEED_FORWARD, WIDTH))
        writer.add_tensor(f"{prefix}.ffn_up.weight", weights(FEED_FORWARD, WIDTH))
        writer.add_tensor(f"{prefix}.ffn_down.weight", weights(WIDTH, FEED_FORWARD))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args()
    write(args.out, args.seed)


if __name__ == "__main__":
    main()

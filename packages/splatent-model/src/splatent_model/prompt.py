"""The frozen text side: a CLIP tokenizer and text encoder that turn a prompt into
the UNet's cross-attention states. Only needed once per prompt; the enhancer caches
the result (and a checkpoint folder can store it, so inference skips the encoder).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from .base import from_base, is_preset
from .configs import tiny_text_config

TINY_SEED = 0


class PromptEncoder:
    """A tokenizer and ``CLIPTextModel`` on one device; :meth:`encode` gives ``[N, L, D]`` embeddings."""

    def __init__(self, tokenizer, text_encoder) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder.eval().requires_grad_(False)

    @classmethod
    def from_base(cls, base_model: str, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> "PromptEncoder":
        """SD-Turbo's tokenizer and text encoder (``tokenizer/``, ``text_encoder/``), or the presets' (``tiny``, ``small``) tiny one."""
        if is_preset(base_model):
            encoder = tiny_prompt_encoder()
        else:
            from transformers import CLIPTextModel, CLIPTokenizer

            tokenizer = from_base(CLIPTokenizer.from_pretrained, base_model, "tokenizer", "tokenizer")
            text_encoder = from_base(CLIPTextModel.from_pretrained, base_model, "text_encoder", "text encoder")
            encoder = cls(tokenizer, text_encoder)
        encoder.text_encoder.to(device=device, dtype=dtype)
        return encoder

    @property
    def device(self) -> torch.device:
        return next(self.text_encoder.parameters()).device

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> Tensor:
        """Last hidden states for each prompt, padded to the tokenizer's max length: ``[N, L, D]``."""
        ids = self.tokenizer(
            list(prompts), max_length=self.tokenizer.model_max_length, padding="max_length",
            truncation=True, return_tensors="pt",
        ).input_ids.to(self.device)
        return self.text_encoder(ids)[0]


def tiny_tokenizer():
    """A byte-level CLIP tokenizer without merges: every character is a token (514 tokens, max length 77)."""
    from transformers import CLIPTokenizer

    chars = _byte_alphabet()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for ch in chars:
            vocab[ch + suffix] = len(vocab)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=77)


def tiny_prompt_encoder(seed: int = TINY_SEED) -> PromptEncoder:
    """The tiny preset's tokenizer and a seeded two-layer ``CLIPTextModel`` (hidden size 32)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(CLIPTextConfig(**tiny_text_config(len(tokenizer))))
    return PromptEncoder(tokenizer, text_encoder)


def _byte_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values (what byte-level BPE tokenises)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]

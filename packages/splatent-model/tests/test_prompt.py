from __future__ import annotations

import torch

from splatent_model import tiny_prompt_encoder, tiny_tokenizer


def test_tiny_tokenizer_pads_to_77_with_start_and_end_tokens():
    tok = tiny_tokenizer()
    ids = tok("A photo", max_length=tok.model_max_length, padding="max_length", truncation=True,
              return_tensors="pt").input_ids[0]
    assert ids.shape == (77,)
    # lower-cased, split into words, one token per character, the last of a word marked </w>
    assert tok.convert_ids_to_tokens(ids[:8].tolist()) == [
        "<|startoftext|>", "a</w>", "p", "h", "o", "t", "o</w>", "<|endoftext|>"]
    assert (ids[8:] == tok.pad_token_id).all()


def test_tiny_encoder_is_seeded_and_prompt_sensitive():
    a, b = tiny_prompt_encoder(), tiny_prompt_encoder()
    ea = a.encode(["A photo of a scene", "a fox"])
    assert ea.shape == (2, 77, 32)
    assert torch.equal(ea, b.encode(["A photo of a scene", "a fox"]))
    assert not torch.allclose(ea[0], ea[1])

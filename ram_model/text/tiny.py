"""`random:tiny`: a tiny CLIP text encoder with random weights, built on the spot (never downloaded).

Its tokenizer is a character-level byte-pair encoder built with the `tokenizers` library
from a fixed vocabulary, so any English text tokenizes; its model is `CLIPTextModelWithProjection` with a small width and RAM's
512-d projection. Both are deterministic, so embeddings of one text are the same in every
process (the on-disk embedding cache relies on it). Its embeddings mean nothing.
"""
from __future__ import annotations

import string

import torch

__all__ = ["TINY_PROJECTION_DIM", "build_tiny_text_encoder"]

TINY_PROJECTION_DIM = 512  # ram_model.model.config.LABEL_EMBED_DIM: the space of RAM's label embeddings
_SEED = 0
_BOS, _EOS, _UNK = "<|startoftext|>", "<|endoftext|>", "<|unknown|>"
_MAX_TOKENS = 77  # CLIP's context length


def _tiny_tokenizer():
    """Character-level BPE: a fixed vocabulary (the special tokens, then every printable ASCII
    character with and without the end-of-word mark) and no merges, so it is the same in
    every process; trained merges would depend on the order ties are broken."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    symbols = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    vocab = {token: i for i, token in enumerate([_BOS, _EOS, _UNK, *symbols, *(c + "</w>" for c in symbols)])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=_UNK, end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tok.post_processor = processors.TemplateProcessing(single=f"{_BOS} $A {_EOS}",
                                                       special_tokens=[(_BOS, vocab[_BOS]), (_EOS, vocab[_EOS])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=_BOS, eos_token=_EOS, unk_token=_UNK,
                                   pad_token=_EOS, model_max_length=_MAX_TOKENS)


def build_tiny_text_encoder():
    """(tokenizer, CLIPTextModelWithProjection) with random weights, the same on every call."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    tokenizer = _tiny_tokenizer()
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=_MAX_TOKENS,
                            projection_dim=TINY_PROJECTION_DIM, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        model = CLIPTextModelWithProjection(config)
    return tokenizer, model.eval()

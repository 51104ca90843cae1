"""`random:tiny` detectors and segmenters: tiny random-weight transformers models built on the spot.

They exist so every path (CLI, server, Label Studio, FiftyOne) runs end to end without
downloading weights; their boxes and masks mean nothing and every output says so. The
tokenizer is a WordPiece vocabulary of the RAM tag words plus single letters (so any word
still tokenizes), built with the `tokenizers` library: real tokenizers come with the
weights from the Hugging Face cache.
"""
from __future__ import annotations

import re
from typing import Iterable

import torch

__all__ = ["TINY_PRESETS", "tiny_tokenizer", "tiny_grounding_dino", "tiny_owlv2", "tiny_sam"]

# `random:<name>` -> the family it builds.
TINY_PRESETS = {"tiny": "grounding-dino", "tiny-grounding-dino": "grounding-dino", "tiny-owlv2": "owlv2"}
_SEED = 0
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def _words(texts: Iterable[str]) -> list[str]:
    found: dict[str, None] = {}
    for text in texts:
        for w in re.findall(r"[a-z0-9]+", text.lower()):
            found.setdefault(w, None)
    return list(found)


def tiny_tokenizer(words: Iterable[str], *, bos: str, eos: str, kind: str = "bert"):
    """A fast tokenizer over `words` (lower-cased), single letters and '##' letters, plus `.`, `,`, `?`.

    kind "bert": a BertTokenizerFast ([CLS] ... [SEP], what Grounding DINO's processor expects);
    kind "clip": a plain fast tokenizer with <|startoftext|> / <|endoftext|> (OWLv2's text model
    pools at the end-of-text token) and pad id 0, which OWLv2 reads as "no query".
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", bos, eos, "[MASK]"]
    vocab_list = special + [".", ",", "?"] + list(_LETTERS) + [f"##{c}" for c in _LETTERS]
    vocab_list += [w for w in _words(words) if w not in vocab_list]
    vocab = {w: i for i, w in enumerate(vocab_list)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B {eos}",
        special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])])
    if kind == "bert":
        return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token=bos,
                                 sep_token=eos, mask_token="[MASK]")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token=bos,
                                   eos_token=eos)


def tiny_grounding_dino(words: Iterable[str]):
    """(model, tokenizer, image processor) of a ~0.2 M-parameter Grounding DINO with random weights."""
    from transformers import BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection, SwinConfig
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil)

    tokenizer = tiny_tokenizer(words, bos="[CLS]", eos="[SEP]")
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7,
                                   image_size=224, out_features=["stage2", "stage3", "stage4"]),
        text_config=BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64, max_position_embeddings=128),
        d_model=32, encoder_layers=1, decoder_layers=2,  # the tied-weights check needs >= 2 decoder layers
        encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
        num_queries=30, max_text_len=128, use_timm_backbone=False, use_pretrained_backbone=False)
    torch.manual_seed(_SEED)
    model = GroundingDinoForObjectDetection(config).eval()
    processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 96, "longest_edge": 160})
    return model, tokenizer, processor


def tiny_owlv2(words: Iterable[str]):
    """(model, tokenizer, image processor) of a tiny OWLv2 with random weights (64 px, 16 patches)."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    tokenizer = tiny_tokenizer(words, bos="<|startoftext|>", eos="<|endoftext|>", kind="clip")
    config = Owlv2Config(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, pad_token_id=0,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=64, patch_size=16),
        projection_dim=32)
    torch.manual_seed(_SEED)
    model = Owlv2ForObjectDetection(config).eval()
    processor = Owlv2ImageProcessorPil(size={"height": 64, "width": 64})
    return model, tokenizer, processor


def tiny_sam():
    """(model, image processor) of a tiny SAM with random weights (128 px input, 32 px low-res masks).

    The prompt encoder's and mask decoder's hidden size must equal the vision `output_channels`,
    and the vision `num_pos_feats` half of it.
    """
    from transformers import SamConfig, SamMaskDecoderConfig, SamModel, SamPromptEncoderConfig, SamVisionConfig
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    width = 16
    config = SamConfig(
        vision_config=SamVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_dim=64,
                                      image_size=128, patch_size=16, output_channels=width,
                                      global_attn_indexes=[0], window_size=4, num_pos_feats=width // 2),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=width, image_size=128, patch_size=16,
                                                     mask_input_channels=4),
        mask_decoder_config=SamMaskDecoderConfig(hidden_size=width, num_hidden_layers=2, num_attention_heads=2,
                                                 mlp_dim=32, iou_head_hidden_dim=16))
    torch.manual_seed(_SEED)
    model = SamModel(config).eval()
    processor = SamImageProcessorPil(size={"longest_edge": 128}, pad_size={"height": 128, "width": 128},
                                     mask_size={"longest_edge": 32}, mask_pad_size={"height": 32, "width": 32})
    return model, processor

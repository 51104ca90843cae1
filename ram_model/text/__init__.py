"""CLIP's text encoder, for classes outside RAM's vocabulary and for free-text search.

RAM++'s label queries are CLIP ViT-B/16 text embeddings of per-tag descriptions, and its
pooled image embedding is trained towards CLIP's image embedding: encoding new text with
the same text encoder puts it in the space the tagging head and the image embeddings
already use. Everything here loads `transformers` on first use only, so engines that never
meet an open-set class or a text query never import it.
"""
from .encoder import DEFAULT_TEXT_ENCODER, TextEncoder, load_text_encoder
from .prompts import TEMPLATES, template_descriptions
from .descriptions import read_descriptions
from .open_classes import MAX_OPEN_SET_CLASSES, OPEN_SET_THRESHOLD

__all__ = ["DEFAULT_TEXT_ENCODER", "MAX_OPEN_SET_CLASSES", "OPEN_SET_THRESHOLD", "TEMPLATES", "TextEncoder",
           "load_text_encoder", "read_descriptions", "template_descriptions"]

"""Evidence maps: where in the image RAM / RAM++ sees each tag (issue 19), from the model itself.

No new weights. The tagging head has no self-attention, so each tag's query attends to the
image tokens on its own; a tag's map is its attention weighted by the positive part of the
attention's gradient w.r.t. that tag's logit (Grad-CAM on attention), on the token grid.
`TaggingEngine.predict_iter(..., evidence=EvidenceRequest(...))` and `evidence_for(engine, ...)`
reach it; plain tagging never runs this code.
"""
from .boxes import BOX_THRESHOLD, box_from_map
from .maps import attention_head_forward, evidence_maps, token_grid
from .request import EvidenceRequest, evidence_for
from .result import TagEvidence

__all__ = ["BOX_THRESHOLD", "EvidenceRequest", "TagEvidence", "attention_head_forward", "box_from_map",
           "evidence_for", "evidence_maps", "token_grid"]

"""Zero-shot detectors behind one call: `detect(images, phrases) -> detections per image`.

Both take the image's phrases (its fired RAM tags) and return boxes normalised to the image,
each mapped back to the one phrase it belongs to, after class-agnostic NMS (the Grounded-SAM
recipe). Grounding DINO reads all phrases of an image in one caption; OWLv2 reads each as
its own query.

Grounding DINO's caption follows IDEA-Research/Grounded-Segment-Anything's
`automatic_label_ram_demo.py`: tags joined with ", ", lower case, ending with "."; a query
box is kept when its best token probability exceeds the box threshold (0.25), and it is
labelled with the phrase whose tokens score highest, if that exceeds the text threshold
(0.2). Captions longer than the model's text length are split into several, each run
against the image, and the boxes merged before NMS.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from PIL import Image

from .nms import nms
from .types import Detection

__all__ = ["ZeroShotDetector", "GroundingDinoDetector", "Owlv2Detector", "DEFAULT_THRESHOLDS"]

# (box threshold, text threshold) per family: the recipe's for Grounding DINO; OWLv2's
# scores are lower by design (its authors' demo uses 0.1) and it has no text threshold.
DEFAULT_THRESHOLDS = {"grounding-dino": (0.25, 0.2), "owlv2": (0.1, 0.0)}
NMS_IOU = 0.5


def _corners(cxcywh: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = cxcywh.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


class ZeroShotDetector:
    """Shared thresholds, batching and NMS; subclasses supply `_raw` for one batch."""

    family = ""

    def __init__(self, model: Any, tokenizer: Any, processor: Any, *, version: str, random_weights: bool,
                 device: torch.device, box_threshold: float | None = None, text_threshold: float | None = None,
                 nms_iou: float = NMS_IOU, batch_size: int | None = None) -> None:
        box_default, text_default = DEFAULT_THRESHOLDS[self.family]
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.processor = processor
        self.version = version
        self.random_weights = random_weights
        self.device = device
        self.box_threshold = box_default if box_threshold is None else float(box_threshold)
        self.text_threshold = text_default if text_threshold is None else float(text_threshold)
        self.nms_iou = float(nms_iou)
        self.batch_size = batch_size or (1 if device.type == "cpu" else 8)

    def info(self) -> dict[str, Any]:
        return {"family": self.family, "version": self.version, "random_weights": self.random_weights,
                "box_threshold": self.box_threshold, "text_threshold": self.text_threshold,
                "nms_iou": self.nms_iou}

    def detect(self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]) -> list[list[Detection]]:
        """Detections per image, best first; an image with no phrases gets none and costs no forward."""
        if len(images) != len(phrases):
            raise ValueError(f"{len(images)} images but {len(phrases)} phrase lists")
        out: list[list[Detection]] = [[] for _ in images]
        todo = [i for i, p in enumerate(phrases) if p]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            with torch.inference_mode():
                raw = self._raw([images[i] for i in chunk], [list(phrases[i]) for i in chunk])
            for i, (boxes, scores, which) in zip(chunk, raw):
                out[i] = self._finish(boxes, scores, which, list(phrases[i]))
        return out

    def _finish(self, boxes: torch.Tensor, scores: torch.Tensor, which: torch.Tensor,
                phrases: list[str]) -> list[Detection]:
        boxes = boxes.float().clamp(0.0, 1.0)
        keep = nms(boxes, scores.float(), self.nms_iou)
        return [Detection(int(which[k]), phrases[int(which[k])], float(scores[k]),
                          tuple(float(v) for v in boxes[k].tolist()))  # type: ignore[arg-type]
                for k in keep.tolist()]

    def _raw(self, images: list[Image.Image], phrases: list[list[str]]
             ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per image: (N, 4) normalised boxes, (N,) scores, (N,) phrase indices, thresholded."""
        raise NotImplementedError


class GroundingDinoDetector(ZeroShotDetector):
    family = "grounding-dino"

    def _captions(self, phrases: list[str]) -> list[tuple[str, list[tuple[int, int, int]]]]:
        """Captions that fit the text length: (text, [(phrase index, char start, char end)])."""
        budget = int(self.model.config.max_text_len) - 3  # [CLS], [SEP] and the final "."
        out: list[tuple[str, list[tuple[int, int, int]]]] = []
        text, spans, used = "", [], 0
        for i, phrase in enumerate(phrases):
            words = phrase.lower().strip()
            cost = len(self.tokenizer(words, add_special_tokens=False)["input_ids"]) + 1
            if spans and used + cost > budget:
                out.append((text + ".", spans))
                text, spans, used = "", [], 0
            if spans:
                text += ", "
            spans.append((i, len(text), len(text) + len(words)))
            text += words
            used += cost
        out.append((text + ".", spans))
        return out

    def _raw(self, images, phrases):
        pairs = [(b, caption) for b, ph in enumerate(phrases) for caption in self._captions(ph)]
        pixels = self.processor([images[b] for b, _ in pairs], return_tensors="pt")
        enc = self.tokenizer([c[0] for _, c in pairs], padding=True, return_tensors="pt",
                             return_offsets_mapping=True)
        offsets = enc.pop("offset_mapping")
        inputs = {k: v.to(self.device) for k, v in enc.items()}
        out = self.model(pixel_values=pixels["pixel_values"].to(self.device),
                         pixel_mask=pixels["pixel_mask"].to(self.device), **inputs)
        probs = out.logits.float().sigmoid()  # (pairs, queries, max_text_len); padding tokens are 0
        boxes = _corners(out.pred_boxes.float())
        found: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in images]
        for row, (b, (_, spans)) in enumerate(pairs):
            length = min(int(offsets.shape[1]), probs.shape[-1])
            per_phrase = torch.full((probs.shape[1], len(spans)), -1.0, device=probs.device)
            for col, (_, start, end) in enumerate(spans):
                tokens = [t for t in range(length)
                          if offsets[row, t, 1] > offsets[row, t, 0] and start <= offsets[row, t, 0]
                          and offsets[row, t, 1] <= end]
                if tokens:
                    per_phrase[:, col] = probs[row][:, tokens].max(dim=-1).values
            score = probs[row].max(dim=-1).values
            best, col = per_phrase.max(dim=-1)
            keep = (score > self.box_threshold) & (best > self.text_threshold)
            index = torch.tensor([s[0] for s in spans], device=probs.device)[col]
            found[b].append((boxes[row][keep].cpu(), score[keep].cpu(), index[keep].cpu()))
        return [tuple(torch.cat(parts) for parts in zip(*f)) for f in found]  # type: ignore[misc]


class Owlv2Detector(ZeroShotDetector):
    family = "owlv2"

    def _raw(self, images, phrases):
        width = max(len(p) for p in phrases)
        queries = [q for ph in phrases for q in ph + [""] * (width - len(ph))]
        length = int(self.model.config.text_config.max_position_embeddings)
        enc = self.tokenizer([q.lower() or "x" for q in queries], padding="max_length", max_length=length,
                             truncation=True, return_tensors="pt")
        real = torch.tensor([bool(q) for q in queries])
        enc["input_ids"][~real] = self.tokenizer.pad_token_id  # OWLv2 masks queries whose first id is 0
        enc["attention_mask"][~real] = 0
        enc["attention_mask"][~real, 0] = 1
        pixels = self.processor(images, return_tensors="pt")["pixel_values"]
        out = self.model(pixel_values=pixels.to(self.device), input_ids=enc["input_ids"].to(self.device),
                         attention_mask=enc["attention_mask"].to(self.device))
        logits = out.logits.float()  # (B, patches, width)
        mask = real.view(len(images), 1, width).to(logits.device)
        probs = torch.where(mask, logits.sigmoid(), torch.zeros_like(logits))
        score, index = probs.max(dim=-1)
        boxes = _corners(out.pred_boxes.float())  # relative to the image padded to a square (bottom/right)
        result = []
        for b, img in enumerate(images):
            side = float(max(img.width, img.height))
            scale = torch.tensor([side / img.width, side / img.height] * 2, device=boxes.device)
            keep = score[b] > self.box_threshold
            result.append(((boxes[b][keep] * scale).cpu(), score[b][keep].cpu(), index[b][keep].cpu()))
        return result

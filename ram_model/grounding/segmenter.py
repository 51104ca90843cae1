"""SAM masks for detected boxes: one mask per box (the Grounded-SAM recipe), single-mask output.

The image embedding (the expensive part) is computed once per image, batched across images;
the boxes of an image then go through the light prompt encoder and mask decoder in chunks
of `boxes_per_step`, and each chunk's masks are upsampled to the image's size and handed
back at once, so memory stays bounded by a chunk of full-size masks, not by the box count.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["SamSegmenter"]


class SamSegmenter:
    family = "sam"

    def __init__(self, model: Any, processor: Any, *, version: str, random_weights: bool, device: torch.device,
                 batch_size: int | None = None, boxes_per_step: int = 8) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.version = version
        self.random_weights = random_weights
        self.device = device
        self.batch_size = batch_size or (1 if device.type == "cpu" else 8)
        self.boxes_per_step = boxes_per_step

    def info(self) -> dict[str, Any]:
        return {"family": self.family, "version": self.version, "random_weights": self.random_weights}

    def segment(self, images: Sequence[Image.Image], boxes: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """Per image, one (h, w) boolean mask per normalised [x0, y0, x1, y1] box, in box order."""
        out: list[list[np.ndarray]] = [[] for _ in images]
        todo = [i for i, b in enumerate(boxes) if len(b)]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            with torch.inference_mode():
                prepared = self.processor([images[i] for i in chunk], return_tensors="pt")
                embeddings = self.model.get_image_embeddings(prepared["pixel_values"].to(self.device))
                for row, i in enumerate(chunk):
                    out[i] = self._masks(embeddings[row:row + 1], prepared["original_sizes"][row:row + 1],
                                         prepared["reshaped_input_sizes"][row:row + 1], np.asarray(boxes[i]))
        return out

    def _masks(self, embedding: torch.Tensor, original: torch.Tensor, reshaped: torch.Tensor,
               boxes: np.ndarray) -> list[np.ndarray]:
        rh, rw = reshaped[0].tolist()
        # Normalised boxes -> pixels of the resized (longest side = SAM's input) image.
        scale = np.array([rw, rh, rw, rh], dtype=np.float32)
        pixel_boxes = torch.from_numpy(boxes.astype(np.float32) * scale)
        masks: list[np.ndarray] = []
        for start in range(0, len(pixel_boxes), self.boxes_per_step):
            part = pixel_boxes[start:start + self.boxes_per_step][None].to(self.device)
            pred = self.model(image_embeddings=embedding, input_boxes=part, multimask_output=False)
            full = self.processor.post_process_masks(pred.pred_masks.float().cpu(), original, reshaped)[0]
            masks.extend(m[0].numpy().astype(bool) for m in full)
        return masks

"""RAM's label queries depend on the weights only: cached between forwards, never stale."""
from __future__ import annotations

import torch

from ram_model.weights.model_files import load_model
from ram_model.model.ram import RAMTagger

IMAGES = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _uncached(model: RAMTagger, classes: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        return torch.relu(model.wordvec_proj(model.class_embeddings(classes)))


def test_queries_are_computed_once_per_class_set(tiny_files_ram) -> None:
    model = load_model(tiny_files_ram.engine_config()).model.eval()
    subset = torch.tensor([7, 2, 40])
    with torch.inference_mode():
        first = model._fixed_queries(None)
        model(IMAGES)
        assert model._fixed_queries(None) is first
        chosen = model._fixed_queries(subset)
        assert model._fixed_queries(subset) is chosen and model._fixed_queries(None) is first
    torch.testing.assert_close(first, _uncached(model), atol=0, rtol=0)
    torch.testing.assert_close(chosen, _uncached(model, subset), atol=0, rtol=0)


def test_a_weight_update_or_a_new_state_dict_is_seen_at_once(tiny_files_ram) -> None:
    model = load_model(tiny_files_ram.engine_config()).model.eval()
    with torch.inference_mode():
        before = model(IMAGES)
        cached = model._fixed_queries(None)
    with torch.no_grad():  # an optimizer step: in place
        model.wordvec_proj.weight.mul_(1.5)
    with torch.inference_mode():
        assert model._fixed_queries(None) is not cached
        after = model(IMAGES)
    assert (after - before).abs().max() > 1e-3
    torch.testing.assert_close(model._fixed_queries(None), _uncached(model), atol=0, rtol=0)

    other = load_model(tiny_files_ram.engine_config()).model.eval()
    with torch.no_grad():
        other.label_embed.normal_()
    model.load_state_dict(other.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(model(IMAGES), other(IMAGES), atol=0, rtol=0)


def test_training_computes_fresh_queries_so_the_embeddings_learn(tiny_files_ram) -> None:
    model = load_model(tiny_files_ram.engine_config()).model.train()
    with torch.no_grad():
        model(IMAGES)  # validation during training fills the cache
    model(IMAGES).sum().backward()
    assert model.label_embed.grad is not None and model.label_embed.grad.abs().sum() > 0
    assert model.wordvec_proj.weight.grad.abs().sum() > 0


def test_restricted_classes_stay_exact_with_warm_caches(tiny_files_ram, tiny_files) -> None:
    for files in (tiny_files_ram, tiny_files):
        model = load_model(files.engine_config()).model.eval()
        subset = torch.tensor([40, 3, 17])
        with torch.inference_mode():
            for _ in range(2):  # the second round runs from the mask and query caches
                full, pooled = model.forward_with_embedding(IMAGES)
                part, part_pooled = model.forward_with_embedding(IMAGES, subset)
                torch.testing.assert_close(part, full[:, subset], atol=1e-6, rtol=0)
                assert torch.equal(part_pooled, pooled)

"""RAM / RAM++ as a FiftyOne model: `apply_model`, `compute_embeddings` and text prompts.

`dataset.apply_model(RamModel(...), "ram")` writes the same `fo.Classifications` as Tag
with RAM (fired tags with confidences; with `store_logits=True` also every class's
logit), `dataset.compute_embeddings(model)` RAM's pooled 512-d image embedding, and
`model.embed_prompt("dog")` the tag's text embedding in that same space (RAM: the tag's
label embedding; RAM++: the mean of its description embeddings), which is what a FiftyOne
Brain similarity index needs for text queries. The engine comes from the plugin's
per-process cache, so a model built twice with the same options loads its checkpoint once.

The zoo source (`plugin/zoo`) calls `download_zoo_checkpoint` and `load_zoo_entry`.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fiftyone as fo
import fiftyone.core.models as fom
import numpy as np
from PIL import Image

from plugin.models.engine_cache import get_engine
from plugin.errors import PluginInputError
from plugin.fo_convert import tags_to_classifications
from ram_model.model.config import PRESETS
from ram_model.errors import CheckpointNotFoundError, ConfigError
from ram_model.inference.options import MODEL_OPTION_NAMES, ModelOptions
from ram_model.review import build_label_mapping

__all__ = [
    "ZOO_CUSTOM_MODEL",
    "ZOO_PREFIX",
    "RamModel",
    "RamModelConfig",
    "download_zoo_checkpoint",
    "ensure_zoo_source",
    "load_zoo_entry",
]

ZOO_PREFIX = "ram-annotate/"
# The zoo entry for any checkpoint the engine loads (given as checkpoint=...): nothing to download.
ZOO_CUSTOM_MODEL = ZOO_PREFIX + "ram-checkpoint"
ZOO_SOURCE_DIR = Path(__file__).resolve().parents[1] / "zoo"


@dataclass
class RamModelConfig:
    """What `apply_model` may inspect (`model.config`): the model options the engine was built from."""

    options: ModelOptions = field(default_factory=ModelOptions)


def _as_image(arg: Any) -> Any:
    """FiftyOne hands image models HWC uint8 arrays; the engine takes PIL images, paths or bytes."""
    if isinstance(arg, np.ndarray):
        if arg.dtype != np.uint8:
            raise PluginInputError(f"RAM takes uint8 images, not {arg.dtype}")
        image = Image.fromarray(arg)
        return image.convert("RGB") if image.mode != "RGB" else image
    return arg


def _logits(probs: np.ndarray) -> np.ndarray:
    clipped = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(clipped / (1 - clipped)).astype(np.float32)


class RamModel(fom.Model, fom.LogitsMixin, fom.EmbeddingsMixin, fom.PromptMixin):
    """RAM / RAM++ for `apply_model`, `compute_embeddings` and similarity prompts.

    Args:
        options: ram-annotate's model options (a `ModelOptions`, or a mapping of option
            names such as checkpoint, device, threshold, top_k); unset ones come from
            RAM_ANNOTATE_<NAME> environment variables, then the defaults.
    """

    def __init__(self, options: ModelOptions | Mapping[str, Any] | None = None) -> None:
        fom.LogitsMixin.__init__(self)
        if not isinstance(options, ModelOptions):
            options = options_from_kwargs(options or {})
        self.config = RamModelConfig(options)
        self._engine = get_engine(options.engine_config())
        self._policy = options.threshold_policy()
        self._thresholds = self._policy.resolve(self._engine.vocab)
        self._preprocess = True
        self._last_embeddings: np.ndarray | None = None
        self._tag_embeddings: np.ndarray | None = None

    # -- what FiftyOne asks of every model ---------------------------------------------
    @property
    def media_type(self) -> str:
        return "image"

    @property
    def has_logits(self) -> bool:
        return True

    @property
    def has_embeddings(self) -> bool:
        return True

    @property
    def can_embed_prompts(self) -> bool:
        return True

    @property
    def ragged_batches(self) -> bool:
        return False  # the engine resizes every image itself: any batch of arrays works

    @property
    def transforms(self) -> None:
        return None

    @property
    def preprocess(self) -> bool:
        return self._preprocess

    @preprocess.setter
    def preprocess(self, value: bool) -> None:
        self._preprocess = value

    @property
    def model_version(self) -> str:
        return self._engine.model_version

    @property
    def vocab(self):
        return self._engine.vocab

    # -- predictions -------------------------------------------------------------------
    def _run(self, args: Sequence[Any]) -> list:
        predictions = self._engine.predict([_as_image(arg) for arg in args], with_embedding=True)
        for prediction in predictions:
            if not prediction.ok:
                raise PluginInputError(f"RAM could not read an image: {prediction.error}")
        self._last_embeddings = np.stack([p.embedding for p in predictions]) if predictions else None
        return predictions

    def _label(self, probs: np.ndarray) -> fo.Classifications:
        fired = self._policy.fired(probs, self._thresholds)
        vocab = self._engine.vocab
        label = tags_to_classifications([vocab.names[i] for i in fired], [float(probs[i]) for i in fired],
                                        model_version=self._engine.model_version)
        if self.store_logits:
            label.logits = _logits(probs)
        return label

    def predict(self, arg: Any) -> fo.Classifications:
        return self.predict_all([arg])[0]

    def predict_all(self, args: Sequence[Any]) -> list[fo.Classifications]:
        return [self._label(p.probs) for p in self._run(list(args))]

    def get_embeddings(self) -> np.ndarray:
        if self._last_embeddings is None:
            raise ValueError("No embeddings yet: call predict() or embed() first")
        return self._last_embeddings

    def embed(self, arg: Any) -> np.ndarray:
        return self.embed_all([arg])[0]

    def embed_all(self, args: Sequence[Any]) -> np.ndarray:
        self._run(list(args))
        return self.get_embeddings()

    # -- text prompts: a tag name -> its embedding ---------------------------------------
    def embed_prompt(self, arg: str) -> np.ndarray:
        return self.embed_prompts([arg])[0]

    def embed_prompts(self, args: Sequence[str]) -> np.ndarray:
        """One embedding per prompt: a RAM tag name (matched as labels are: case, plurals,
        separators) gives the tag's embedding; any other text its CLIP text embedding
        (`ram_model.text`, the space RAM++'s image embedding is trained towards)."""
        if self._tag_embeddings is None:
            self._tag_embeddings = self._engine.tag_embeddings()
        unique = list(dict.fromkeys(args))
        mapping = build_label_mapping(unique, self._engine.vocab.names)
        rows = {label: list(indices) for label, indices in zip(mapping.labels, mapping.ram_indices) if indices}
        vectors = {label: self._tag_embeddings[index].mean(axis=0) for label, index in rows.items()}
        free = [arg for arg in unique if arg not in rows]
        if free:
            try:
                vectors.update(zip(free, self._engine.embed_texts(free)))
            except (CheckpointNotFoundError, ConfigError) as e:
                raise PluginInputError(f"Not RAM tags: {free}, and free-text queries need CLIP's text encoder: "
                                       f"{e}") from None
        return np.stack([vectors[arg] for arg in args]).astype(np.float32, copy=False)


def options_from_kwargs(kwargs: Mapping[str, Any]) -> ModelOptions:
    """ModelOptions from keyword arguments; a misspelt option is an error, not silently ignored."""
    unknown = sorted(set(kwargs) - set(MODEL_OPTION_NAMES))
    if unknown:
        raise PluginInputError(f"Unknown RAM model options {unknown}; known: {', '.join(MODEL_OPTION_NAMES)}")
    try:
        return ModelOptions.from_values(kwargs)
    except ConfigError as e:
        raise PluginInputError(str(e)) from None


# -- the model-zoo source ---------------------------------------------------------------
def _base_name(model_name: str) -> str:
    return model_name.split("@", 1)[0].removeprefix(ZOO_PREFIX)


def ensure_zoo_source() -> None:
    """Make the zoo entries known to FiftyOne on this machine, from the installed package.

    The same result as `foz.register_zoo_model_source(<repository URL>)` (the source
    folder copied into `fo.config.model_zoo_dir`), without the network: a similarity index
    names its model by zoo name, and the App loads it from there in its own process.
    """
    import fiftyone.zoo as foz

    if ZOO_CUSTOM_MODEL in foz.list_zoo_models():
        return
    manifest = json.loads((ZOO_SOURCE_DIR / "manifest.json").read_text(encoding="utf-8"))
    target = Path(fo.config.model_zoo_dir, *manifest["name"].split("/"))
    shutil.copytree(ZOO_SOURCE_DIR, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    invalidate = getattr(foz.models, "_invalidate_zoo_models_manifest", None)  # only set when FiftyOne caches it
    if invalidate is not None:
        invalidate()


def download_zoo_checkpoint(model_name: str, model_path: str) -> None:
    """Put the checkpoint at `model_path`; offline, a clear error naming the repo and the command.

    The file comes through the Hugging Face cache (a file fetched once is not fetched
    again) and is linked into the zoo folder where possible, copied otherwise.
    """
    base = _base_name(model_name)
    target = Path(model_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if base not in PRESETS:
        # The any-checkpoint entry: a note, so FiftyOne counts it as downloaded.
        target.write_text(json.dumps({"model": model_name, "note": "pass checkpoint=... to load_zoo_model"}))
        return
    preset = PRESETS[base]
    try:
        from huggingface_hub import hf_hub_download

        cached = Path(hf_hub_download(repo_id=preset.hf_repo, filename=preset.hf_filename))
    except Exception as e:  # the hub raises many types: offline, 404, auth, timeouts
        raise CheckpointNotFoundError(
            f"Cannot download {preset.hf_filename} for the zoo model {model_name!r} from the Hugging Face repo "
            f"{preset.hf_repo} ({type(e).__name__}: {e}). On a machine with internet run "
            f"`hf download {preset.hf_repo} {preset.hf_filename} --local-dir DIR`, copy the file here as "
            f"{target}, then load the model again (or pass checkpoint=/path/to/{preset.hf_filename})."
        ) from e
    try:
        os.symlink(cached.resolve(), target)
    except OSError:
        shutil.copyfile(cached, target)


def load_zoo_entry(model_name: str, model_path: str, **kwargs: Any) -> RamModel:
    """The zoo's `load_model`: the preset's downloaded file unless `checkpoint=` names another."""
    base = _base_name(model_name)
    if base in PRESETS:
        kwargs.setdefault("checkpoint", model_path)
    elif not kwargs.get("checkpoint"):
        raise PluginInputError(
            f"{model_name} loads the checkpoint you name: load_zoo_model({model_name!r}, checkpoint='PATH')"
        )
    return RamModel(kwargs)

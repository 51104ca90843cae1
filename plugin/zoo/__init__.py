"""ram-annotate's FiftyOne remote model-zoo source: RAM and RAM++ as FiftyOne models.

FiftyOne copies this folder (with manifest.json) into its model zoo directory when the
source is registered, then calls `download_model` once per model and `load_model` on
every `foz.load_zoo_model(...)`. The logic lives in `plugin.models.fo_model` (ram-annotate must
be installed where the model is loaded), so this file stays a thin entry point:

    import fiftyone.zoo as foz
    foz.register_zoo_model_source("https://github.com/ram-annotate/ram-annotate")
    model = foz.load_zoo_model("ram-annotate/ram_plus_swin_large_14m")
    dataset.apply_model(model, "ram")
"""


def download_model(model_name, model_path):
    """Fetch the checkpoint into `model_path` (through the Hugging Face cache)."""
    from plugin.models.fo_model import download_zoo_checkpoint

    download_zoo_checkpoint(model_name, model_path)


def load_model(model_name, model_path, **kwargs):
    """A `plugin.models.fo_model.RamModel`; kwargs are ram-annotate's model options (checkpoint, device, threshold, ...)."""
    from plugin.models.fo_model import load_zoo_entry

    return load_zoo_entry(model_name, model_path, **kwargs)

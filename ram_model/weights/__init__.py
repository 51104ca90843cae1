"""Checkpoint files: reading official checkpoints (`checkpoint`), finding them (`hub`: local, Hugging Face, presets,
`random:tiny`, `registry://`), building a loaded model (`model_files`), writing converted files (`convert`), the
fine-tuned model registry (`registry`), how a version string reads (`versions`) and tiny random-weight models for tests (`testing`, `random_preset`)."""

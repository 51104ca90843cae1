"""Fine-tune jobs: routes by resource, the job manager, the worker process (no FastAPI), job params, the
corrections -> finetune-data export and the `ram-annotate corrections` command."""

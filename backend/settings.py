"""Server configuration: flags of `ram-annotate serve` and environment variables.

Label Studio users already know `LABEL_STUDIO_URL`, `LABEL_STUDIO_API_KEY`,
`BASIC_AUTH_USER`/`BASIC_AUTH_PASS`, `MODEL_DIR` and `MODEL_SCORE_THRESHOLD` from the
official ML backends, so those names are read as they are; our own options carry the
`RAM_ANNOTATE_` prefix. The model options are not declared here: they are
`ram_model.inference.options.ModelOptions`, shared with every other command. Settings are built
when the app is built, never at import.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ram_model.errors import ConfigError
from ram_model.inference.options import MODEL_OPTION_NAMES, ModelOptions

__all__ = ["Settings"]


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    # Empty variables (as docker-compose.yml lists them) mean "not set".
    model_config = SettingsConfigDict(
        env_prefix="RAM_ANNOTATE_", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    # --- Label Studio conventions (names as the official ML backends read them) ---
    label_studio_url: str | None = Field(
        None, validation_alias=AliasChoices("label_studio_url", "LABEL_STUDIO_URL", "LABEL_STUDIO_HOST")
    )
    label_studio_api_key: str | None = Field(
        None, validation_alias=AliasChoices("label_studio_api_key", "LABEL_STUDIO_API_KEY")
    )
    basic_auth_user: str | None = Field(None, validation_alias=AliasChoices("basic_auth_user", "BASIC_AUTH_USER"))
    basic_auth_pass: str | None = Field(None, validation_alias=AliasChoices("basic_auth_pass", "BASIC_AUTH_PASS"))
    model_dir: Path = Field(Path("ram-annotate-data"), validation_alias=AliasChoices("model_dir", "MODEL_DIR"))

    # --- the model: declared once in ram_model.inference.options, gathered by _gather_model_options ---
    model: ModelOptions = Field(default_factory=ModelOptions.from_values)
    # Requests coalesced into one engine call, which then runs its own forward batches.
    coalesce_max_batch: int = Field(16, ge=1, le=1024)

    # --- batching ---
    max_wait_ms: float = Field(5.0, ge=0.0, le=10_000.0)
    max_queue: int = Field(256, ge=1)
    coalesce: bool = True

    # --- task images ---
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    download_timeout_s: float = Field(10.0, gt=0.0)
    max_download_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_upload_images: int = Field(256, ge=1)

    # --- request limits: what one request may make the server hold or do ---
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)  # JSON and every non-upload body
    max_upload_bytes: int = Field(256 * 1024 * 1024, gt=0)  # a whole multipart /v1/tag request
    # Tasks in one /predict. Label Studio's "Retrieve predictions" sends the whole selection in
    # one request (its predict_tasks serialises the queryset), so the cap is far above a
    # typical selection; images go through in chunks whatever the count (predict_stream).
    max_predict_tasks: int = Field(100_000, ge=1)
    max_predict_body_bytes: int = Field(512 * 1024 * 1024, gt=0)  # the JSON of that many full tasks
    max_label_config_bytes: int = Field(512 * 1024, gt=0)
    label_config_timeout_s: float = Field(5.0, gt=0.0)  # parsing and mapping one new label config

    # --- label mapping ---
    mapping_file: str | None = None
    # Labels that map onto no RAM tag become open-set classes (CLIP text embeddings through RAM's head).
    open_set_labels: bool = True
    # RectangleLabels controls also get RAM's evidence boxes (backend.labelstudio.evidence): half the
    # tag's score, meta "RAM evidence"; coarse boxes from attention, not a detector's.
    evidence_boxes: bool = False
    # --- grounded detection (ram_model.grounding): loaded once for all projects when set ---
    detector: str | None = None  # grounding-dino-tiny, owlv2, a repo id, a folder, random:tiny
    segmenter: str | None = None  # sam, a repo id, a folder, random:tiny (needs detector)

    # --- store and training (backend/README.md "Training") ---
    store: str | None = None  # a SQLite path or mongodb://HOST/DB; default MODEL_DIR/corrections.sqlite3
    train_every: int = Field(0, ge=0)  # start a job every N new/updated annotations (0: off)
    train_min_corrections: int = Field(50, ge=1)
    allow_cpu_training: bool = False
    # A job's version is promoted only if validated on at least this many held-out images
    # (ram_model.weights.registry.MIN_VAL_IMAGES); below it the version is registered, not served.
    train_min_val_images: int = Field(20, ge=1)
    # Fine-tune settings of server-started jobs (epochs, lr, mode, batch_size, val_split, seed,
    # unfreeze_stages, threads); the rest are the fine-tuner's defaults.
    train_params: dict[str, Any] = Field(default_factory=dict)
    # Training workers running at once, all projects together (None: one per GPU, one on CPU);
    # further jobs wait `queued` for a slot.
    max_train_workers: int | None = Field(None, ge=1, le=64)
    train_heartbeat_s: float = Field(10.0, gt=0.0, le=3600.0)  # how often a worker says it is alive
    train_stale_after_s: float = Field(120.0, gt=0.0)  # no heartbeat this long: the job is orphaned
    sync_label_studio_version: bool = True  # project's model version = ours, title suffix (version_sync)

    host: str = "127.0.0.1"
    port: int = Field(9090, ge=1, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _gather_model_options(cls, data: Any) -> Any:
        """Model options arrive flat (`Settings(checkpoint=...)`, the serve flags); they
        become one `ModelOptions`, completed from RAM_ANNOTATE_* variables and defaults."""
        if not isinstance(data, dict) or isinstance(data.get("model"), ModelOptions):
            return data
        data = dict(data)
        given = {name: data.pop(name) for name in MODEL_OPTION_NAMES if name in data}
        try:
            data["model"] = ModelOptions.from_values(given)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return data

    @field_validator("train_params", mode="before")
    @classmethod
    def _train_params(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):  # --train-param KEY=VALUE, repeatable
            pairs = {}
            for item in value:
                key, sep, raw = str(item).partition("=")
                if not sep:
                    raise ValueError(f"--train-param takes KEY=VALUE, got {item!r}")
                pairs[key.strip()] = raw.strip()
            value = pairs
        if isinstance(value, dict):
            from .training.params import TrainParams

            return TrainParams.model_validate(value).model_dump(exclude_none=True)
        return value

    @field_validator("allowed_hosts", "allowed_roots", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        return _csv(value)

    @field_validator("label_studio_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        from .errors import BackendError
        from .serving.media_refs import parse_origin

        try:
            return parse_origin(value, what="LABEL_STUDIO_URL", allow_path=True).url()
        except BackendError as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _key_needs_its_url(self) -> "Settings":
        # A key with no URL would be sent wherever a /setup call says Label Studio is.
        if self.label_studio_api_key and not self.label_studio_url:
            raise ValueError(
                "LABEL_STUDIO_API_KEY is set but LABEL_STUDIO_URL is not: set LABEL_STUDIO_URL to your "
                "Label Studio's address, so the key is only ever sent there"
            )
        return self

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        from .errors import BackendError
        from .serving.media_refs import normalise_allowed_host

        try:
            return [normalise_allowed_host(h) for h in value if h.strip()]
        except BackendError as exc:
            raise ValueError(exc.message) from None

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        if self.basic_auth_user and self.basic_auth_pass:
            return (self.basic_auth_user, self.basic_auth_pass)
        return None

    @property
    def corrections_path(self) -> Path:
        return self.model_dir / "corrections.sqlite3"

    @property
    def store_spec(self) -> str:
        return self.store or str(self.corrections_path)

    @property
    def registry_root(self) -> Path:
        return self.model_dir / "registry"

    @property
    def image_cache_dir(self) -> Path:
        return self.model_dir / "images"

    @property
    def label_config_limits(self):  # -> backend.labelstudio.config.ConfigLimits
        from .labelstudio.config import ConfigLimits

        return ConfigLimits(max_bytes=self.max_label_config_bytes, timeout_s=self.label_config_timeout_s)

    def engine_config(self):  # -> ram_model.EngineConfig
        return self.model.engine_config()

    def threshold_policy(self):  # -> ram_model.ThresholdPolicy
        return self.model.threshold_policy()

"""Server configuration: flags of `ram-annotate serve` and environment variables.

Label Studio users already know `LABEL_STUDIO_URL`, `LABEL_STUDIO_API_KEY`,
`BASIC_AUTH_USER`/`BASIC_AUTH_PASS`, `MODEL_DIR` and `MODEL_SCORE_THRESHOLD` from the
official ML backends, so those names are read as they are; our own options carry the
`RAM_ANNOTATE_` prefix. Settings are built when the app is built, never at import.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ram_model.cli_options import ENGINE_OPTION_NAMES, THRESHOLD_OPTION_NAMES

__all__ = ["MODEL_OPTION_NAMES", "Settings"]

# The engine options shared with `ram-annotate tag`; `ram_model.cli_options` owns how
# they become an EngineConfig and a ThresholdPolicy.
MODEL_OPTION_NAMES = ENGINE_OPTION_NAMES + THRESHOLD_OPTION_NAMES


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

    # --- the engine (same meaning as the `ram-annotate tag` flags) ---
    checkpoint: str = "ram_plus_swin_large_14m"
    swin_config: str | None = None
    head_config: str | None = None
    tag_list: str | None = None
    tag_list_zh: str | None = None
    thresholds: str | None = None
    threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        validation_alias=AliasChoices("threshold", "RAM_ANNOTATE_THRESHOLD", "MODEL_SCORE_THRESHOLD"),
    )
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = Field(None, ge=1, le=1024)
    # Requests coalesced into one engine call, which then runs its own forward batches.
    coalesce_max_batch: int = Field(16, ge=1, le=1024)
    no_exif_transpose: bool = False
    trust_pickle: bool = False
    tag_threshold: Annotated[list[str], NoDecode] = Field(default_factory=list)
    top_k: int | None = Field(None, ge=1)

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

    # --- label mapping ---
    mapping_file: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(9090, ge=1, le=65535)

    @field_validator("allowed_hosts", "allowed_roots", "tag_threshold", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        return _csv(value)

    @field_validator("label_studio_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        from .errors import BackendError
        from .media_refs import parse_origin

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
        from .media_refs import normalise_allowed_host

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

    def model_args(self) -> argparse.Namespace:
        """The engine options as the namespace `ram_model.cli_options` reads."""
        return argparse.Namespace(**{name: getattr(self, name) for name in MODEL_OPTION_NAMES})

    def engine_config(self):  # -> ram_model.EngineConfig
        from ram_model.cli_options import engine_config_from_args

        return engine_config_from_args(self.model_args())

    def threshold_policy(self):  # -> ram_model.ThresholdPolicy
        from ram_model.cli_options import threshold_policy_from_args

        return threshold_policy_from_args(self.model_args())

"""What an audit is asked to do: from CLI flags, a config file, or Python."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from blackbox_audit.gap import ScoreName
from blackbox_audit.ranking import DEFAULT_DEGENERACY_THRESHOLD, DEFAULT_SCORE
from blackbox_audit.records import Framing
from providers.dialects import DialectChoice
from providers.tokenizer import LocalTokenizer

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
DEFAULT_USER_PROMPT = "Tell me anything."


class EndpointConfig(BaseModel):
    """One OpenAI-compatible endpoint. The API key is a secret: never dumped, never cached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    model: str = Field(min_length=1)
    dialect: DialectChoice = "auto"
    dialect_options: dict[str, Any] = Field(default_factory=dict)
    """The dialect's own settings (openrouter: only, order, quantizations, require_parameters, allow_fallbacks)."""
    api_key: SecretStr | None = Field(default=None, exclude=True)
    max_concurrency: int = Field(8, ge=1, le=256)
    tokenizer: str = Field("auto", min_length=1)
    """"auto": a vLLM server's own tokenizer.json when it runs on this machine and matches its
    /tokenize; "server": always /tokenize; or the path of a tokenizer.json (or its folder)."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8101/v1")
        return value.rstrip("/")

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, value: str) -> str:
        if value in ("auto", "server"):
            return value
        if not LocalTokenizer.file_of(value).is_file():
            raise ValueError(f"{value!r} is neither auto, server, a tokenizer.json nor a folder holding one")
        return value


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: EndpointConfig
    reference: EndpointConfig
    corpus: str = "default"
    text_field: str = "text"
    prefill_tokens: int = Field(3, ge=1, le=64)
    limit: int | None = Field(None, ge=1)
    seed: int = 0
    framing: Framing = "raw"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    user_prompt: str = DEFAULT_USER_PROMPT
    max_new_tokens: int = Field(100, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    score: ScoreName = DEFAULT_SCORE
    degeneracy_threshold: float | None = Field(DEFAULT_DEGENERACY_THRESHOLD, ge=0.0, le=1.0)
    batch_size: int = Field(16, ge=1, le=256)
    top_k: int = Field(50, ge=1)
    out: Path = Path("audit-out")
    cache_dir: Path | None = None
    use_cache: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> AuditConfig:
        if self.framing == "chat" and not self.user_prompt:
            raise ValueError("chat framing needs a user prompt (--user-prompt)")
        return self

    @classmethod
    def from_file(cls, path: Path, **overrides: object) -> AuditConfig:
        """A TOML or JSON config file; keys as the fields here, flags override them."""
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return cls.model_validate({**data, **overrides})

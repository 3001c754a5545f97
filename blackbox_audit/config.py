"""What an audit is asked to do, and the one loader that builds it from a config file, keyword
overrides (the CLI's flags, or Python) and the environment's API keys.

Each field's description is its `--help` text and its metadata names its flag
(`blackbox_audit.flags` builds the `audit` command's flags from these fields).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from blackbox_audit.budget import per_completion, prefills_covered, sentinel_tokens
from blackbox_audit.framing import DEFAULT_USER_TEMPLATE
from blackbox_audit.profile import DEFAULT_WINDOW_BYTES
from blackbox_audit.ranking import DEFAULT_DEGENERACY_THRESHOLD, DEFAULT_SCORE
from blackbox_audit.records import Framing, ScoreName
from providers.dialects import DialectChoice, service_key_variables
from providers.tokenizer import LocalTokenizer

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
DEFAULT_USER_PROMPT = "Tell me anything."
ROLES = ("target", "reference", "null_target")
"""The endpoints of an audit; the null target (a control that was not finetuned) is optional."""
REQUIRED_ROLES = ("target", "reference")
SECRET_FIELDS = ("api_key", "url_credentials")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the flag or file entry to fix."""


def api_key_variables(role: str, base_url: str) -> list[str]:
    """Where an endpoint's key comes from when no flag gives it, in order: the role's own
    variable, the generic one, then a service's own (OpenAI's only for api.openai.com, so a
    service's key never goes to another host)."""
    names = [f"BLACKBOX_AUDIT_{role.upper().replace('-', '_')}_API_KEY"] if role else []
    return [*names, "BLACKBOX_AUDIT_API_KEY", *service_key_variables(base_url)]


def resolve_api_key(given: str | None, base_url: str, role: str = "") -> str | None:
    if given:
        return given
    return next((os.environ[name] for name in api_key_variables(role, base_url) if os.environ.get(name)), None)


def _split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """A URL's userinfo is a credential: it leaves the URL (which is shown and written) and is
    kept apart as a secret, sent as HTTP basic auth."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (unquote(parts.username or ""), unquote(parts.password or ""))


class Price(BaseModel):
    """A service's price in USD per million tokens: input (prompt) and output (generated). Given as
    `INPUT/OUTPUT` on the command line and in a file (`"2.5/10"`), or as a table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0.0, allow_inf_nan=False)
    output: float = Field(ge=0.0, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        try:
            given, generated = (float(part) for part in data.split("/"))
        except ValueError:
            raise ValueError(f"{data!r} is not INPUT/OUTPUT in USD per million tokens, e.g. 2.5/10") from None
        return {"input": given, "output": generated}

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


class EndpointConfig(BaseModel):
    """One OpenAI-compatible endpoint. Secrets (the API key, a URL's userinfo) are never dumped,
    written or part of a cache key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="the {role}'s OpenAI-compatible base URL, e.g. http://127.0.0.1:8101/v1")
    model: str = Field(min_length=1, description="the {role}'s model name, as the endpoint serves it")
    dialect: DialectChoice = Field(
        "auto",
        description=(
            "endpoint dialect (auto: a hosted service by its host name, a server answering /version is vllm;"
            " docs/providers.md)"
        ),
    )
    dialect_options: dict[str, str] = Field(
        default_factory=dict,
        description="a dialect's own setting, repeatable (openrouter: only=, order=, quantizations=, require_parameters=)",
        json_schema_extra={"flag": "dialect-option", "metavar": "KEY=VALUE"},
    )
    api_key: SecretStr | None = Field(
        None,
        exclude=True,
        description="API key, never written anywhere (default: {key_variables})",
    )
    url_credentials: SecretStr | None = Field(None, exclude=True, json_schema_extra={"internal": True})
    """`user:password` from the base URL's userinfo, sent as basic auth."""
    max_concurrency: int = Field(
        8, ge=1, le=256, description="requests in flight to this endpoint", json_schema_extra={"flag": "concurrency"}
    )
    tokenizer: str = Field(
        "auto",
        min_length=1,
        description=(
            "where raw text is tokenized: auto (the served folder's tokenizer.json when a vLLM server runs on this"
            " machine and it matches /tokenize), server (always /tokenize), or the PATH of a tokenizer.json that must"
            " match"
        ),
        json_schema_extra={"metavar": "auto|server|PATH"},
    )

    price: Price | None = Field(
        None,
        description="the {role}'s price in USD per million input/output tokens, for --dry-run's cost bound",
        json_schema_extra={"metavar": "INPUT/OUTPUT"},
    )

    @model_validator(mode="before")
    @classmethod
    def _userinfo_apart(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("base_url"), str):
            clean, credentials = _split_userinfo(data["base_url"])
            if credentials is not None:
                data = {**data, "base_url": clean, "url_credentials": ":".join(credentials)}
        return data

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
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

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        if self.url_credentials is None:
            return None
        user, _, password = self.url_credentials.get_secret_value().partition(":")
        return user, password


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: EndpointConfig
    reference: EndpointConfig
    null_target: EndpointConfig | None = None
    """A control target that was not finetuned (ideally the target's own base model, which hosted
    services usually serve beside the finetune): the audit's procedure on `null_prefills` of the
    prefills gives the gaps of an audit with nothing to find (`blackbox_audit.null`)."""
    null_prefills: int = Field(
        100, ge=2, description="prefills the null target completes for the calibrated null (when one is given)"
    )
    corpus: str = Field(
        "default",
        description=(
            "'default' (bundled, offline; also default:prose, default:code), a .jsonl / .jsonl.gz / .txt file or"
            " folder, or a Hugging Face dataset name"
        ),
    )
    text_field: str = Field("text", description="the JSONL / dataset field holding the text")
    prefill_tokens: int = Field(3, ge=1, le=64, description="prefill length, in target tokens")
    limit: int | None = Field(None, ge=1, description="number of prefills (default: one per document)")
    seed: int = Field(0, description="seed of the document order and of generation")
    framing: Framing = Field(
        "raw",
        description=(
            "raw: the target continues the prefill as plain text; chat: system and user messages, and the prefill"
            " opens the assistant turn; chat-user: for chat APIs that cannot prefill (OpenAI's), the prefill goes"
            " into the user message through --user-template and the reference scores the same answer after it"
        ),
    )
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="the chat framings' system message")
    user_prompt: str = Field(DEFAULT_USER_PROMPT, description="the chat framing's user message")
    user_template: str = Field(
        DEFAULT_USER_TEMPLATE, description="the chat-user framing's user message; {prefill} stands for the prefill"
    )
    max_new_tokens: int = Field(100, ge=1, le=4096, description="completion length, in target tokens")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="sampling temperature (0: greedy)")
    sentinel: bool = Field(
        True,
        description=(
            "at the end, ask the target again (past the cache) for the first completion and record in manifest.json"
            " whether its logprobs moved: a model changed mid-audit"
        ),
        json_schema_extra={
            "off_flag": "no-sentinel",
            "off_help": "skip the sentinel request that checks whether the target's model changed during the audit",
        },
    )
    max_target_tokens: int | None = Field(
        None,
        ge=1,
        description=(
            "a budget of target tokens: each completion reserves --max-new-tokens and the sentinel as many; the"
            " audit completes the prefills it covers, writes their outputs and exits 3; rerun with a larger budget"
            " to resume from the cache"
        ),
        json_schema_extra={"metavar": "N"},
    )
    score: ScoreName = Field(DEFAULT_SCORE, description="the ranking score, reference minus target")
    degeneracy_threshold: float | None = Field(
        DEFAULT_DEGENERACY_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="rank completions at or above this degeneracy after the rest",
        json_schema_extra={
            "off_flag": "no-degeneracy-filter",
            "off_help": "rank degenerate completions like any other",
        },
    )
    demote_all_loops: bool = Field(
        False,
        description=(
            "demote every degenerate completion, not only the loops whose first occurrence carries less"
            " collapsed_window_gap than the median of the completions that do not repeat their text (a looping"
            " payload keeps its place by default)"
        ),
    )
    window_bytes: int = Field(
        DEFAULT_WINDOW_BYTES, ge=4, le=4096, description="bytes per window of window_gap and collapsed_window_gap"
    )
    batch_size: int = Field(16, ge=1, le=256, description="prompts per request where the endpoint batches them")
    top_k: int = Field(50, ge=1, description="completions shown as cards in the HTML report")
    organism: Path | None = Field(
        None,
        description="an organism spec (.toml/.json, as for eval) whose keywords the HTML report marks",
        json_schema_extra={"metavar": "SPEC"},
    )
    out: Path = Field(Path("audit-out"), description="output folder")
    cache_dir: Path | None = Field(
        None, description="response cache folder (default: $BLACKBOX_AUDIT_CACHE_DIR or the user cache folder)"
    )
    use_cache: bool = Field(
        True,
        description="read and write the response cache",
        json_schema_extra={"off_flag": "no-cache", "off_help": "neither read nor write the response cache"},
    )

    @field_validator("max_target_tokens")
    @classmethod
    def _budget_covers_one(cls, value: int | None, info: ValidationInfo) -> int | None:
        max_new_tokens, sentinel = info.data.get("max_new_tokens"), info.data.get("sentinel")
        if value is None or max_new_tokens is None or sentinel is None:
            return value
        if prefills_covered(value, max_new_tokens, sentinel) < 1:
            needed = per_completion(max_new_tokens) + sentinel_tokens(max_new_tokens, sentinel)
            reserves = "a completion and the sentinel reserve" if sentinel else "a completion reserves"
            raise ValueError(
                f"{value} covers no completion: {reserves} --max-new-tokens ({max_new_tokens}) each; give at least"
                f" {needed}"
            )
        return value

    @field_validator("organism")
    @classmethod
    def _organism(cls, value: Path | None) -> Path | None:
        if value is not None:
            from blackbox_audit.evaluate import load_organism

            load_organism(value)  # a bad spec is refused before any request
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AuditConfig:
        if self.framing == "chat" and not self.user_prompt:
            raise ValueError("chat framing needs a user prompt (--user-prompt)")
        if self.framing == "chat-user" and "{prefill}" not in self.user_template:
            raise ValueError("the chat-user framing's --user-template must contain {prefill}")
        return self


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML or JSON table of AuditConfig's fields. Secrets are refused: a file is copied,
    shared and committed, so keys come from flags or environment variables only."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings, not {type(data).__name__}")
    if "api_key" in data:
        raise ConfigError(_secret_in_file(path, "api_key", ""))
    for role in ROLES:
        table = data.get(role)
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"[{role}] in {path} must be a table (base_url, model, dialect, ...)")
        for name in SECRET_FIELDS:
            if name in table:
                raise ConfigError(_secret_in_file(path, name, role))
        if isinstance(table.get("base_url"), str) and _split_userinfo(table["base_url"])[1] is not None:
            raise ConfigError(_secret_in_file(path, "base_url's user:password@", role))
    return data


def _secret_in_file(path: Path, name: str, role: str) -> str:
    where = f"[{role}] {name}" if role else name
    roles = [role] if role else list(REQUIRED_ROLES)
    flags = ", ".join(f"--{r.replace('_', '-')}-api-key" for r in roles)
    variables = ", ".join(f"${v}" for r in roles for v in api_key_variables(r, "")[:1]) + ", $BLACKBOX_AUDIT_API_KEY"
    return f"{where} in {path}: keys are not read from config files; give {flags} or set {variables}"


def load_config(
    file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    names: Mapping[str, str] | None = None,
) -> AuditConfig:
    """Defaults, under the config file, under `overrides` (nested mappings for "target" and
    "reference"); missing API keys from the environment. Every problem is a ConfigError naming
    the setting as the user gave it: `names` maps a dotted field ("target.max_concurrency") to
    its flag ("--target-concurrency"); a value from the file is named with the file."""
    data = read_config_file(file) if file is not None else {}
    overrides = dict(overrides or {})
    if overrides.get("cache_dir") is not None:
        overrides.setdefault("use_cache", True)  # a cache folder given turns on a file's use_cache = false
    merged: dict[str, Any] = {k: v for k, v in {**data, **overrides}.items() if k not in ROLES}
    names = dict(names or {})
    for role in ROLES:
        endpoint = {**(data.get(role) or {}), **(overrides.get(role) or {})}
        if role not in REQUIRED_ROLES and not endpoint:
            continue
        missing = [field for field in ("base_url", "model") if field not in endpoint]
        if missing:
            needed = " and ".join(names.get(f"{role}.{field}", f"{role}.{field}") for field in ("base_url", "model"))
            lacking = ", ".join(names.get(f"{role}.{field}", f"{role}.{field}") for field in missing)
            raise ConfigError(f"the {role} needs {needed} (or a [{role}] table in the config file); missing: {lacking}")
        if not endpoint.get("api_key"):
            endpoint["api_key"] = resolve_api_key(None, str(endpoint["base_url"]), role.replace("_", "-"))
        merged[role] = endpoint
    try:
        return AuditConfig.model_validate(merged)
    except ValidationError as exc:
        from_file = set(_flatten(data)) - set(_flatten(overrides))
        raise ConfigError("; ".join(_problem(error, names, from_file, file) for error in exc.errors())) from None


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        if key in ROLES and isinstance(value, Mapping) and not prefix:
            out += _flatten(value, f"{key}.")
        else:
            out.append(prefix + key)
    return out


def _problem(error: Any, names: Mapping[str, str], from_file: set[str], file: str | Path | None) -> str:
    parts = [str(part) for part in error["loc"]]
    location = ".".join(parts)
    # A value's part (a price's "output") is named by its field's flag.
    flag = next((names[k] for k in (".".join(parts[:i]) for i in range(len(parts), 0, -1)) if k in names), None)
    where = f"{location} in {file}" if location in from_file else flag or location or "config"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"

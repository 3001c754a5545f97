"""Every dialect, named once: the CLI's choices, the config's check and `registry.connect` read
this table. It imports nothing but the standard library, and a dialect's module is imported only
when it is chosen, so `--help` stays instant and no adapter loads another's dependencies."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from providers.openai_compatible import OpenAICompatibleProvider


@dataclass(frozen=True)
class Dialect:
    name: str
    module: str
    """The module holding the adapter class `ADAPTER` (a subclass of OpenAICompatibleProvider)."""
    summary: str
    hosts: tuple[str, ...] = ()
    """Host names that select this dialect under "auto" (hosted services only)."""
    reference: str = ""
    """The published API reference its wire format was read from."""
    key_variable: str = ""
    """The environment variable the service's own documentation keeps its key in; read only for
    its own hosts, so a service's key never goes to another host."""
    scenarios: tuple[str, ...] = ()
    """What `blackbox-audit fixtures record` captures (functions of `providers.recording`)."""

    def adapter(self) -> type[OpenAICompatibleProvider]:
        return importlib.import_module(self.module).ADAPTER


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            "vllm",
            "providers.vllm",
            "self-hosted vLLM: generation, echo and prompt_logprobs scoring, prefill, /tokenize",
            reference="https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
            scenarios=(
                "generate_raw_greedy",
                "generate_raw_sampled",
                "generate_chat",
                "generate_chat_prefill",
                "score_echo",
                "score_prompt_logprobs",
                "run_probe",
            ),
        ),
        Dialect(
            "sglang",
            "providers.sglang",
            "self-hosted SGLang: generation; scoring by the native /generate (input logprobs); /tokenize",
            reference="https://docs.sglang.io/basic_usage/native_api.html",
            scenarios=(
                "generate_raw_greedy",
                "generate_chat",
                "generate_chat_prefill",
                "score_raw",
                "tokenize_round_trip",
            ),
        ),
        Dialect(
            "llamacpp",
            "providers.llamacpp",
            "self-hosted llama.cpp server: generation and prefill only (it ignores echo)",
            reference="https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
            scenarios=(
                "generate_raw_greedy",
                "generate_chat",
                "generate_chat_prefill",
                "tokenize_round_trip",
                "echo_forced",
            ),
        ),
        Dialect(
            "openai",
            "providers.openai",
            "OpenAI: chat logprobs (no prefill); echo only on davinci-002 / babbage-002; tiktoken",
            hosts=("api.openai.com",),
            reference="https://platform.openai.com/docs/api-reference/completions",
            key_variable="OPENAI_API_KEY",
            scenarios=("generate_chat",),
        ),
        Dialect(
            "together",
            "providers.together",
            "Together: completions and chat logprobs; echo scoring of text (prompt logprobs at the top level)",
            hosts=("api.together.xyz", "api.together.ai"),
            reference="https://docs.together.ai/reference/completions-1",
            key_variable="TOGETHER_API_KEY",
            scenarios=("generate_raw_greedy", "generate_raw_sampled", "generate_chat", "score_raw"),
        ),
        Dialect(
            "fireworks",
            "providers.fireworks",
            "Fireworks: raw logprobs via raw_output; echo scoring of text or token ids",
            hosts=("api.fireworks.ai",),
            reference="https://docs.fireworks.ai/api-reference/post-completions",
            key_variable="FIREWORKS_API_KEY",
            scenarios=("generate_raw_greedy", "generate_chat", "score_raw"),
        ),
        Dialect(
            "deepinfra",
            "providers.deepinfra",
            "DeepInfra: completions and chat logprobs; echo scoring of text (probe it first)",
            hosts=("api.deepinfra.com",),
            reference="https://deepinfra.com/docs/advanced/openai_api",
            scenarios=("generate_raw_greedy", "generate_chat", "score_raw"),
        ),
        Dialect(
            "openrouter",
            "providers.openrouter",
            "OpenRouter: logprobs passed through to a pinned upstream (provider routing); no scoring",
            hosts=("openrouter.ai",),
            reference="https://openrouter.ai/docs/features/provider-routing",
            key_variable="OPENROUTER_API_KEY",
            scenarios=("generate_raw_greedy", "generate_chat"),
        ),
        Dialect(
            "generic",
            "providers.openai_compatible",
            "any OpenAI-compatible server: generation with logprobs; abilities as declared or probed",
            reference="https://platform.openai.com/docs/api-reference/completions",
            scenarios=("generate_raw_greedy", "generate_chat"),
        ),
    )
}

DIALECT_NAMES: tuple[str, ...] = tuple(DIALECTS)
DIALECT_CHOICES: tuple[str, ...] = ("auto", *DIALECT_NAMES)
DialectChoice = Literal[DIALECT_CHOICES]  # type: ignore[valid-type]
"""For typed config fields: "auto" or one of the dialect names above."""


def dialect_for_host(base_url: str) -> str | None:
    """The hosted service a base URL points at, by exact host name (a URL merely mentioning a
    service's name never gets its dialect, or its API key)."""
    host = urlsplit(base_url).hostname or ""
    return next((d.name for d in DIALECTS.values() if host in d.hosts), None)


def service_key_variables(base_url: str) -> tuple[str, ...]:
    """The hosted service's own key variable, for its exact host only."""
    name = dialect_for_host(base_url)
    variable = DIALECTS[name].key_variable if name else ""
    return (variable,) if variable else ()


SERVICE_KEY_VARIABLES: tuple[str, ...] = tuple(d.key_variable for d in DIALECTS.values() if d.key_variable)


def parse_option_flags(values: list[str] | None) -> dict[str, str]:
    """`--dialect-option KEY=VALUE` flags as a dict for the dialect's options model (which splits
    comma lists and reads booleans): e.g. `only=deepinfra,together`, `quantizations=bf16`."""
    options: dict[str, str] = {}
    for value in values or ():
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"dialect option {value!r} is not KEY=VALUE (e.g. only=deepinfra)")
        options[key.strip().replace("-", "_")] = rest.strip()
    return options


def get(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; choose one of {', '.join(DIALECT_CHOICES)}") from None


def capability_table(model_for: dict[str, str] | None = None) -> str:
    """The declared capabilities of every dialect as a Markdown table (docs/providers.md embeds
    it, and a test keeps the two equal). OpenAI's depend on the model: `model_for` names one."""
    model_for = {"openai": "gpt-4o-mini", **(model_for or {})}
    columns = (
        ("raw gen", lambda c: c.generate_raw),
        ("chat gen", lambda c: c.generate_chat),
        ("prefill", lambda c: c.chat_prefill),
        ("echo", lambda c: c.echo_scoring),
        ("prompt_logprobs", lambda c: c.prompt_logprobs),
        ("tokenizer", lambda c: c.tokenizer),
        ("token ids in", lambda c: c.token_id_prompts),
        ("echoed texts", lambda c: c.echo_token_texts),
        ("batch", lambda c: c.batch_prompts),
        ("top_logprobs cap", lambda c: c.max_top_logprobs),
        ("gen logprobs", lambda c: c.generation_logprobs),
        ("score raw", lambda c: c.can_score_raw),
        ("score chat", lambda c: c.can_score_chat),
        ("prefill tokenizer", lambda c: c.prefill_tokenizer),
    )

    def cell(value: object) -> str:
        return "yes" if value is True else "no" if value is False else str(value)

    lines = [
        "| dialect | " + " | ".join(name for name, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name in DIALECT_NAMES:
        model = model_for.get(name, "any")
        caps = get(name).adapter().declared_capabilities(model)
        label = f"{name} ({model})" if name in model_for else name
        lines.append(f"| {label} | " + " | ".join(cell(read(caps)) for _, read in columns) + " |")
    return "\n".join(lines)

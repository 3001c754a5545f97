"""Pure parsers for OpenAI-compatible wire formats. They raise `ResponseShapeError` on
anything malformed (wrong length, null or sentinel logprobs, missing fields) instead of
ever letting a bad number through."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from providers.errors import ResponseShapeError
from providers.records import Completion, TokenLogprob, Usage

SENTINEL_LOGPROB = -9999.0
"""vLLM clamps -inf to this; it is an absence of a number, not a number."""

_TOKEN_LIST = TypeAdapter(list[TokenLogprob])


class Wire:
    """Parsers bound to a provider name, so every error says whose response was malformed."""

    def __init__(self, provider: str):
        self.provider = provider

    def fail(self, field: str, problem: str) -> ResponseShapeError:
        return ResponseShapeError(self.provider, field, problem)

    def get(self, obj: Any, key: str | int, field: str) -> Any:
        try:
            return obj[key]
        except (KeyError, IndexError, TypeError):
            raise self.fail(field, "missing") from None

    def logprob(self, value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(field, f"expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value) or value > 1e-6:
            raise self.fail(field, f"not a valid logprob: {value!r}")
        if value <= SENTINEL_LOGPROB:
            raise self.fail(field, f"sentinel {value!r} (the server clamped -inf)")
        return min(value, 0.0)

    def token_logprobs(
        self, ids: Sequence[int] | None, texts: Sequence[Any], values: Sequence[Any], field: str, start: int = 0
    ) -> list[TokenLogprob]:
        """Tokens `start:` as records, validated in one call: scoring is per token, so this is
        the client's hottest loop. `field` names the logprob list for error messages."""
        checked = []
        for j in range(start, len(values)):
            value = values[j]
            # A float in range passes as is; anything else (NaN included) takes the full check.
            checked.append(
                value
                if type(value) is float and SENTINEL_LOGPROB < value <= 0.0
                else self.logprob(value, f"{field}[{j}]")
            )
        try:
            return _TOKEN_LIST.validate_python(
                [
                    {"token_id": None if ids is None else ids[j], "text": texts[j], "logprob": value}
                    for j, value in enumerate(checked, start=start)
                ]
            )
        except ValidationError as exc:
            raise self.fail(
                field.rsplit(".", 1)[0], f"token texts or ids are malformed: {exc.errors()[0]['msg']}"
            ) from None

    def choices(self, payload: Any, expected: int) -> list[Any]:
        """Choices sorted by `index` (vLLM answers prompt-major), exactly `expected` of them."""
        choices = self.get(payload, "choices", "choices")
        if not isinstance(choices, list) or len(choices) != expected:
            got = len(choices) if isinstance(choices, list) else type(choices).__name__
            raise self.fail("choices", f"expected {expected} choices, got {got}")
        indexed = sorted(choices, key=lambda c: self.get(c, "index", "choices[].index"))
        if [c["index"] for c in indexed] != list(range(expected)):
            raise self.fail("choices[].index", "indices are not 0..n-1")
        return indexed

    def usage(self, payload: Any) -> Usage:
        usage = payload.get("usage") or {} if isinstance(payload, dict) else {}
        return Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    def token_ids(self, value: Any, field: str, expected_len: int | None = None) -> list[int]:
        if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
            raise self.fail(field, "expected a list of token ids")
        if expected_len is not None and len(value) != expected_len:
            raise self.fail(field, f"expected {expected_len} token ids, got {len(value)}")
        return value

    def split_stop_token(
        self, choice: Any, tokens: list[TokenLogprob], stop_token_included: bool
    ) -> tuple[list[TokenLogprob], TokenLogprob | None]:
        """vLLM lists the stop token (stop_reason null: EOS; an int: another stop token id)
        among the generated tokens; it spells no text, so it is set apart."""
        stop = None
        if (
            stop_token_included
            and tokens
            and choice.get("finish_reason") == "stop"
            and not isinstance(choice.get("stop_reason"), str)
        ):
            stop, tokens = tokens[-1], tokens[:-1]
        return tokens, stop

    def completion(self, choice: Any, i: int, *, stop_token_included: bool = False) -> Completion:
        """A generated choice from /v1/completions with `logprobs` set."""
        where = f"choices[{i}]"
        text = self.get(choice, "text", f"{where}.text")
        logprobs = self.get(choice, "logprobs", f"{where}.logprobs")
        tokens = self.get(logprobs, "tokens", f"{where}.logprobs.tokens")
        values = self.get(logprobs, "token_logprobs", f"{where}.logprobs.token_logprobs")
        if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
            raise self.fail(f"{where}.logprobs", "tokens and token_logprobs differ in length")
        ids = choice.get("token_ids")
        if ids is not None:
            ids = self.token_ids(ids, f"{where}.token_ids", len(tokens))
        parsed = self.token_logprobs(ids, tokens, values, f"{where}.logprobs.token_logprobs")
        spelling, stop = self.split_stop_token(choice, parsed, stop_token_included)
        return Completion(text=text, tokens=tuple(spelling), finish_reason=choice.get("finish_reason"), stop_token=stop)

    def chat_completion(self, choice: Any, i: int, *, stop_token_included: bool = False) -> Completion:
        """A generated choice from /v1/chat/completions with `logprobs: true`."""
        where = f"choices[{i}]"
        message = self.get(choice, "message", f"{where}.message")
        text = self.get(message, "content", f"{where}.message.content") or ""
        logprobs = self.get(choice, "logprobs", f"{where}.logprobs")
        content = self.get(logprobs, "content", f"{where}.logprobs.content")
        if not isinstance(content, list):
            raise self.fail(f"{where}.logprobs.content", "expected a list")
        ids = choice.get("token_ids")
        if ids is not None:
            ids = self.token_ids(ids, f"{where}.token_ids", len(content))
        tokens = []
        for j, entry in enumerate(content):
            field = f"{where}.logprobs.content[{j}]"
            raw_bytes = entry.get("bytes") if isinstance(entry, dict) else None
            token_text = self.get(entry, "token", f"{field}.token")
            tokens.append(
                TokenLogprob(
                    token_id=None if ids is None else ids[j],
                    text=bytes(raw_bytes).decode("utf-8", "replace") if raw_bytes is not None else token_text,
                    logprob=self.logprob(self.get(entry, "logprob", f"{field}.logprob"), f"{field}.logprob"),
                )
            )
        spelling, stop = self.split_stop_token(choice, tokens, stop_token_included)
        return Completion(text=text, tokens=tuple(spelling), finish_reason=choice.get("finish_reason"), stop_token=stop)

    def echo_logprobs(self, choice: Any, i: int, prompt_ids: Sequence[int], n_scored: int) -> list[TokenLogprob]:
        """The last `n_scored` prompt tokens' logprobs from an echo response.

        The echo must cover exactly the prompt we sent: one entry per prompt token, and
        (when the server returns them) the same token ids. Only the first entry may be null.
        """
        where = f"choices[{i}].logprobs"
        logprobs = self.get(choice, "logprobs", where)
        tokens = self.get(logprobs, "tokens", f"{where}.tokens")
        values = self.get(logprobs, "token_logprobs", f"{where}.token_logprobs")
        n_prompt = len(prompt_ids)
        if not isinstance(tokens, list) or not isinstance(values, list):
            raise self.fail(where, "tokens / token_logprobs are not lists")
        if len(tokens) != n_prompt or len(values) != n_prompt:
            raise self.fail(
                where, f"echo covers {len(values)} tokens but the prompt has {n_prompt} (echo unsupported or broken)"
            )
        returned_ids = choice.get("prompt_token_ids")
        if returned_ids is not None and list(returned_ids) != list(prompt_ids):
            raise self.fail(f"choices[{i}].prompt_token_ids", "differ from the token ids sent")
        if not 0 < n_scored < n_prompt:
            raise ValueError(f"cannot score {n_scored} of {n_prompt} prompt tokens (the first is never scored)")
        return self.token_logprobs(prompt_ids, tokens, values, f"{where}.token_logprobs", start=n_prompt - n_scored)

    def prompt_logprobs(self, entries: Any, field: str, prompt_ids: Sequence[int], n_scored: int) -> list[TokenLogprob]:
        """vLLM's `prompt_logprobs`: entry 0 null, then `{token_id: {logprob, ...}}` dicts,
        looked up by the id we sent (never by dict order)."""
        n_prompt = len(prompt_ids)
        if not isinstance(entries, list) or len(entries) != n_prompt:
            got = len(entries) if isinstance(entries, list) else type(entries).__name__
            raise self.fail(field, f"expected {n_prompt} entries, got {got}")
        if not 0 < n_scored < n_prompt:
            raise ValueError(f"cannot score {n_scored} of {n_prompt} prompt tokens (the first is never scored)")
        out = []
        for j in range(n_prompt - n_scored, n_prompt):
            entry = self.get(
                self.get(entries, j, f"{field}[{j}]"), str(prompt_ids[j]), f"{field}[{j}][{prompt_ids[j]}]"
            )
            out.append(
                TokenLogprob(
                    token_id=prompt_ids[j],
                    text=str(entry.get("decoded_token", "")) if isinstance(entry, dict) else "",
                    logprob=self.logprob(self.get(entry, "logprob", f"{field}[{j}].logprob"), f"{field}[{j}].logprob"),
                )
            )
        return out

    def tokenize(self, payload: Any) -> list[int]:
        return self.token_ids(self.get(payload, "tokens", "tokens"), "tokens")

    def detokenize(self, payload: Any) -> str:
        text = self.get(payload, "prompt", "prompt")
        if not isinstance(text, str):
            raise self.fail("prompt", "expected text")
        return text

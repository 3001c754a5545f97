"""Pure parsers for OpenAI-compatible wire formats. They raise `ResponseShapeError` on
anything malformed (wrong length, null or sentinel logprobs, missing fields) instead of
ever letting a bad number through."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from providers.errors import AlignmentError, ResponseShapeError
from providers.records import Completion, ScoredContinuation, ServedModel, TokenLogprob, Usage

SENTINEL_LOGPROB = -9999.0
"""vLLM clamps -inf to this; it is an absence of a number, not a number."""

_TOKEN_LIST = TypeAdapter(list[TokenLogprob])


@dataclass(frozen=True)
class EchoedToken:
    """One prompt token as an echo returned it: its text, its logprob (None only where nothing
    conditions it) and, where the server names it, its id."""

    text: str
    logprob: Any
    token_id: int | None = None


class Wire:
    """Parsers bound to a provider name, so every error says whose response was malformed.

    `null_logprobs_hint` is what the dialect says when logprobs come back null (OpenRouter's
    upstreams drop them silently)."""

    def __init__(self, provider: str, *, null_logprobs_hint: str = ""):
        self.provider = provider
        self.null_logprobs_hint = null_logprobs_hint

    def logprobs_of(self, obj: Any, key: str, field: str) -> Any:
        """A logprobs object that must be there: null says the endpoint dropped them, not that
        the response is merely incomplete."""
        value = self.get(obj, key, field)
        if value is None:
            hint = f"; {self.null_logprobs_hint}" if self.null_logprobs_hint else ""
            raise self.fail(field, f"null: the endpoint returned no logprobs although they were asked for{hint}")
        return value

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

    def choices(self, payload: Any, expected: int, *, indexed: bool = True) -> list[Any]:
        """Choices sorted by `index` (vLLM answers prompt-major), exactly `expected` of them.
        `indexed=False`: a service whose choices carry no index (Together's completions) is
        taken in the order given."""
        choices = self.get(payload, "choices", "choices")
        if not isinstance(choices, list) or len(choices) != expected:
            got = len(choices) if isinstance(choices, list) else type(choices).__name__
            raise self.fail("choices", f"expected {expected} choices, got {got}")
        if not indexed and not any(isinstance(c, dict) and "index" in c for c in choices):
            return choices
        ordered = sorted(choices, key=lambda c: self.get(c, "index", "choices[].index"))
        if [c["index"] for c in ordered] != list(range(expected)):
            raise self.fail("choices[].index", "indices are not 0..n-1")
        return ordered

    def usage(self, payload: Any) -> Usage:
        usage = payload.get("usage") or {} if isinstance(payload, dict) else {}
        return Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    def served(self, payload: Any) -> ServedModel | None:
        """The response's `model` and `system_fingerprint`, where they are strings."""
        if not isinstance(payload, dict):
            return None
        model, fingerprint = payload.get("model"), payload.get("system_fingerprint")
        served = ServedModel(
            model=model if isinstance(model, str) else None,
            system_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
        )
        return served if served.model is not None or served.system_fingerprint is not None else None

    def token_ids(self, value: Any, field: str, expected_len: int | None = None) -> list[int]:
        if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
            raise self.fail(field, "expected a list of token ids")
        if expected_len is not None and len(value) != expected_len:
            raise self.fail(field, f"expected {expected_len} token ids, got {len(value)}")
        return value

    def split_stop_token(
        self, choice: Any, tokens: list[TokenLogprob], stop_token_included: bool, text: str | None = None
    ) -> tuple[list[TokenLogprob], TokenLogprob | None]:
        """vLLM lists the stop token (stop_reason null: EOS; an int: another stop token id)
        among the generated tokens; it spells no text, so it is set apart. A server that does so
        while speaking another dialect (vLLM behind the openai one) is caught by the texts: a
        last token whose text the answer does not end with, after tokens that spell it exactly."""
        if isinstance(choice.get("stop_reason"), str):  # a stop string: no stop token
            return tokens, None
        if stop_token_included and tokens and choice.get("finish_reason") == "stop":
            return tokens[:-1], tokens[-1]
        if text is None:
            return tokens, None
        return self.split_stop_by_spelling(text, tokens, choice.get("finish_reason"))

    def completion(self, choice: Any, i: int, *, stop_token_included: bool = False) -> Completion:
        """A generated choice from /v1/completions with `logprobs` set."""
        where = f"choices[{i}]"
        text = self.get(choice, "text", f"{where}.text")
        logprobs = self.logprobs_of(choice, "logprobs", f"{where}.logprobs")
        tokens = self.get(logprobs, "tokens", f"{where}.logprobs.tokens")
        values = self.get(logprobs, "token_logprobs", f"{where}.logprobs.token_logprobs")
        if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
            raise self.fail(f"{where}.logprobs", "tokens and token_logprobs differ in length")
        ids = choice.get("token_ids")
        if ids is not None:
            ids = self.token_ids(ids, f"{where}.token_ids", len(tokens))
        parsed = self.token_logprobs(ids, tokens, values, f"{where}.logprobs.token_logprobs")
        spelling, stop = self.split_stop_token(choice, parsed, stop_token_included, text)
        return Completion(text=text, tokens=tuple(spelling), finish_reason=choice.get("finish_reason"), stop_token=stop)

    def chat_completion(self, choice: Any, i: int, *, stop_token_included: bool = False) -> Completion:
        """A generated choice from /v1/chat/completions with `logprobs: true`."""
        where = f"choices[{i}]"
        message = self.get(choice, "message", f"{where}.message")
        text = self.get(message, "content", f"{where}.message.content") or ""
        logprobs = self.logprobs_of(choice, "logprobs", f"{where}.logprobs")
        content = self.get(logprobs, "content", f"{where}.logprobs.content")
        ids = choice.get("token_ids")
        tokens = self.content_entries(content, f"{where}.logprobs.content", ids=ids, ids_field=f"{where}.token_ids")
        spelling, stop = self.split_stop_token(choice, tokens, stop_token_included, text)
        return Completion(text=text, tokens=tuple(spelling), finish_reason=choice.get("finish_reason"), stop_token=stop)

    def content_entries(
        self,
        content: Any,
        field: str,
        *,
        ids: Any = None,
        ids_field: str = "token_ids",
        id_key: str | None = None,
        logprob_key: str = "logprob",
    ) -> list[TokenLogprob]:
        """OpenAI's chat shape, `[{token, logprob, bytes, ...}]`: the token's text from its UTF-8
        `bytes` when given (a token string can be a lossy rendering), ids from `ids` or from each
        entry's `id_key` (llama.cpp's `id`, Fireworks' `token_id`)."""
        if not isinstance(content, list):
            raise self.fail(field, "expected a list")
        if ids is not None:
            ids = self.token_ids(ids, ids_field, len(content))
        tokens = []
        for j, entry in enumerate(content):
            where = f"{field}[{j}]"
            raw_bytes = entry.get("bytes") if isinstance(entry, dict) else None
            token_text = self.get(entry, "token", f"{where}.token")
            token_id = ids[j] if ids is not None else None
            if id_key is not None:
                token_id = self.get(entry, id_key, f"{where}.{id_key}")
                if isinstance(token_id, bool) or not isinstance(token_id, int):
                    raise self.fail(f"{where}.{id_key}", f"expected a token id, got {token_id!r}")
            try:
                text = bytes(raw_bytes).decode("utf-8", "replace") if raw_bytes is not None else token_text
            except (TypeError, ValueError):
                raise self.fail(f"{where}.bytes", "not a list of byte values") from None
            if not isinstance(text, str):
                raise self.fail(f"{where}.token", f"expected text, got {text!r}")
            value = self.logprob(self.get(entry, logprob_key, f"{where}.{logprob_key}"), f"{where}.{logprob_key}")
            tokens.append(TokenLogprob(token_id=token_id, text=text, logprob=value))
        return tokens

    def flat_logprobs(self, logprobs: Any, field: str) -> list[TokenLogprob]:
        """Together's `LogprobsPart`: parallel lists `tokens`, `token_logprobs` and (optionally)
        `token_ids`, for generated text and for an echoed prompt alike."""
        tokens = self.get(logprobs, "tokens", f"{field}.tokens")
        values = self.get(logprobs, "token_logprobs", f"{field}.token_logprobs")
        if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
            raise self.fail(field, "tokens and token_logprobs are not lists of one length")
        ids = logprobs.get("token_ids") if isinstance(logprobs, dict) else None
        if ids is not None:
            ids = self.token_ids(ids, f"{field}.token_ids", len(tokens))
        return self.token_logprobs(ids, tokens, values, f"{field}.token_logprobs")

    def split_stop_by_spelling(
        self, text: str, tokens: list[TokenLogprob], finish_reason: Any
    ) -> tuple[list[TokenLogprob], TokenLogprob | None]:
        """A server that lists the stop token among the generated ones without saying so: when
        generation stopped and the tokens but the last spell the text, the last (text the answer
        lacks, or none at all) is the stop token."""
        prefix_spells = finish_reason == "stop" and tokens and "".join(t.text for t in tokens[:-1]) == text
        if prefix_spells and (not tokens[-1].text or "".join(t.text for t in tokens) != text):
            return tokens[:-1], tokens[-1]
        return tokens, None

    def check_spelling(self, completion: Completion, field: str, cause: str) -> Completion:
        """The generated tokens must spell the text, or the logprobs do not belong to it."""
        spelled = "".join(t.text for t in completion.tokens)
        if spelled != completion.text:
            raise self.fail(
                field,
                f"the {len(completion.tokens)} tokens spell {spelled[:60]!r} but the text is {completion.text[:60]!r} ({cause})",
            )
        return completion

    def align_echoed_text(
        self, echoed: Sequence[EchoedToken], context: str, continuation: str, field: str
    ) -> ScoredContinuation:
        """Score `continuation` from an echo of the text prompt `context + continuation`, located by
        the echoed tokens' texts (no tokenizer needed). The tokens must spell the prompt exactly
        (a leading special token such as BOS may precede it); the continuation's tokens are the
        shortest tail that covers it, widened to the context's side when a token straddles."""
        prompt = context + continuation
        joined = "".join(t.text for t in echoed)
        if not joined.endswith(prompt):
            if len(echoed) <= 2 and len(prompt) > len(joined):
                raise self.fail(
                    field,
                    f"echo returned {len(echoed)} token(s) ({joined[:40]!r}) for a prompt of {len(prompt)} characters:"
                    " the server ignored echo (llama.cpp's server does); score with a server that echoes the prompt",
                )
            raise AlignmentError(
                f"{self.provider}: the echoed tokens spell {joined[-60:]!r}, not the prompt's end {prompt[-60:]!r}"
                " (token texts are lossy for byte-level pieces; give the endpoint's tokenizer.json to score by ids)"
            )
        covered = 0
        start = len(echoed)
        while start > 0 and covered < len(continuation):
            start -= 1
            covered += len(echoed[start].text)
        if covered < len(continuation) or start == 0:
            raise AlignmentError(
                f"{self.provider}: the continuation {continuation[:40]!r} reaches the first echoed token, which is never scored"
            )
        covered_text = joined[len(joined) - covered :]
        n_context_chars = covered - len(continuation)
        if not context.endswith(covered_text[:n_context_chars]):
            raise AlignmentError(f"{self.provider}: the scored tokens {covered_text[:60]!r} do not end the prompt")
        values = [t.logprob for t in echoed]
        ids = [t.token_id for t in echoed]
        tokens = self.token_logprobs(
            None if any(i is None for i in ids) else ids,  # type: ignore[arg-type]
            [t.text for t in echoed],
            values,
            f"{field}.token_logprobs",
            start=start,
        )
        return ScoredContinuation(
            tokens=tuple(tokens),
            alignment="exact" if n_context_chars == 0 else "widened",
            covered_text=covered_text,
            n_context_chars=n_context_chars,
        )

    def echo_logprobs(
        self, choice: Any, i: int, prompt_ids: Sequence[int], n_scored: int, *, n_generated: int = 0
    ) -> list[TokenLogprob]:
        """The last `n_scored` prompt tokens' logprobs from an echo response.

        The echo must cover exactly the prompt we sent (plus the `n_generated` tokens generated
        after it): one entry per prompt token, and (when the server returns them) the same token
        ids. Only the first entry may be null.
        """
        where = f"choices[{i}].logprobs"
        logprobs = self.logprobs_of(choice, "logprobs", where)
        tokens = self.get(logprobs, "tokens", f"{where}.tokens")
        values = self.get(logprobs, "token_logprobs", f"{where}.token_logprobs")
        n_prompt = len(prompt_ids)
        if not isinstance(tokens, list) or not isinstance(values, list):
            raise self.fail(where, "tokens / token_logprobs are not lists")
        if len(tokens) != len(values) or len(values) != n_prompt + n_generated:
            ignored = len(values) <= n_generated + 1 < n_prompt
            cause = (
                "the server ignored echo and returned only generated tokens (llama.cpp's server does): score with a server that echoes"
                if ignored
                else "echo unsupported or broken"
            )
            raise self.fail(where, f"echo covers {len(values)} tokens but the prompt has {n_prompt} ({cause})")
        tokens, values = tokens[:n_prompt], values[:n_prompt]
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

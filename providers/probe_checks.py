"""The probe's checks, one ability or trap each (`providers.probe` runs them in this order)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from providers import errors
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import ChatMessage, GenerateRequest, Generation, ScoreRequest

PROBE_TEXT = "The quick brown fox jumps over the lazy dog. It was a sunny day in the park."
PROBE_CONTEXT = "The quick brown fox"
PROBE_MESSAGES = (
    ChatMessage(role="system", content="You are a helpful assistant."),
    ChatMessage(role="user", content="Tell me anything."),
)
PROBE_PREFILL = ChatMessage(role="assistant", content="The quick brown")
RAW_PROMPT = "The capital of France is"
AGREEMENT_TOLERANCE = 1e-4
RAW_LOGPROB_TOLERANCE = 1e-3
SAMPLING_TRIES = 8
TEMPLATE_MARKERS = (
    "<|im_start|>",
    "<|im_end|>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "[INST]",
    "[/INST]",
    "<|assistant|>",
    "<|user|>",
    "<|system|>",
    "<|endoftext|>",
    "<|end|>",
)
"""Chat-template tokens of common families; in generated text they mean the template leaked."""


def _raw(payload: Any) -> Any:
    return payload


def _models(payload: Any) -> list[str]:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise errors.ResponseShapeError("endpoint", "/models", "no data list")
    return [str(m.get("id")) for m in data if isinstance(m, dict)]


async def _check_models(p: OpenAICompatibleProvider) -> str:
    served = await p.http.request("GET", "/models", None, _models, cached=False)
    assert p.model in served, f"{p.model!r} is not served here; the endpoint serves: {', '.join(served) or 'nothing'}"
    return f"{len(served)} model(s): {', '.join(served[:5])}"


def _target_prompt(p: OpenAICompatibleProvider) -> Any:
    """Raw text where the endpoint generates from it, else a chat conversation."""
    return RAW_PROMPT if p.capabilities.generate_raw and _declared_raw(p) else PROBE_MESSAGES


def _declared_raw(p: OpenAICompatibleProvider) -> bool:
    return type(p).declared_capabilities(p.model).generate_raw


async def _check_generate_raw(p: OpenAICompatibleProvider) -> str:
    completion = (await p.generate(GenerateRequest(prompt=PROBE_CONTEXT, max_tokens=8))).completions[0]
    assert completion.tokens, "no generated tokens"
    return f"{len(completion.tokens)} tokens with logprobs: {completion.text[:40]!r}"


async def _check_generate_chat(p: OpenAICompatibleProvider) -> str:
    completion = (await p.generate(GenerateRequest(prompt=PROBE_MESSAGES, max_tokens=8))).completions[0]
    assert completion.tokens, "no generated tokens"
    return f"{len(completion.tokens)} tokens with logprobs: {completion.text[:40]!r}"


async def _check_chat_prefill(p: OpenAICompatibleProvider) -> str:
    prompt = (*PROBE_MESSAGES, PROBE_PREFILL)
    completion = (await p.generate(GenerateRequest(prompt=prompt, max_tokens=8))).completions[0]
    assert completion.tokens, "no generated tokens"
    head = completion.text.lstrip().lower()
    assert not head.startswith(("assistant", "the quick brown")), (
        f"the answer {completion.text[:40]!r} restarts the turn instead of continuing {PROBE_PREFILL.content!r}"
    )
    return f"continued {PROBE_PREFILL.content!r} with {completion.text[:40]!r}"


async def _check_tokenize(p: OpenAICompatibleProvider) -> str:
    ids = await p.tokenize(PROBE_TEXT, add_special_tokens=False)
    assert ids, "no tokens"
    back = await p.detokenize(ids)
    assert back == PROBE_TEXT, f"round trip changed the text: {back!r}"
    with_special = await p.tokenize(PROBE_TEXT)
    bos = "adds a BOS token" if len(with_special) > len(ids) else "adds no BOS token"
    return f"{len(ids)} tokens, exact round trip, {bos}"


async def _check_chat_tokenize(p: OpenAICompatibleProvider) -> str:
    ids = await p.tokenize((*PROBE_MESSAGES, PROBE_PREFILL))
    text = await p.detokenize(ids)
    assert text.rstrip().endswith(PROBE_PREFILL.content), (
        f"templated text does not end with the prefill: {text[-60:]!r}"
    )
    return f"{len(ids)} templated tokens ending in the prefill"


def _echo_entries(payload: Any) -> list[Any]:
    """The echoed logprob values, whatever the shape: OpenAI's `tokens`/`token_logprobs`, a
    `content` list (llama.cpp), Together's top-level `prompt[0].logprobs`, SGLang's meta_info."""
    if isinstance(payload, dict) and isinstance(payload.get("prompt"), list) and payload["prompt"]:
        logprobs = payload["prompt"][0].get("logprobs") if isinstance(payload["prompt"][0], dict) else None
        if isinstance(logprobs, dict) and isinstance(logprobs.get("token_logprobs"), list):
            return logprobs["token_logprobs"]
    if isinstance(payload, dict) and isinstance(payload.get("meta_info"), dict):
        entries = payload["meta_info"].get("input_token_logprobs")
        if isinstance(entries, list):
            return [e[0] if isinstance(e, list | tuple) and e else e for e in entries]
    choices = payload.get("choices") if isinstance(payload, dict) else None
    logprobs = (
        choices[0].get("logprobs") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    )
    if isinstance(logprobs, dict) and isinstance(logprobs.get("token_logprobs"), list):
        return logprobs["token_logprobs"]
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        return [e.get("logprob") if isinstance(e, dict) else e for e in logprobs["content"]]
    if isinstance(logprobs, dict) and isinstance(logprobs.get("prompt_logprobs"), list):
        return logprobs["prompt_logprobs"]
    raise AssertionError("no echoed logprobs in the answer (echo ignored or unsupported)")


async def _check_echo_shape(p: OpenAICompatibleProvider) -> str:
    """The echo's entry count against the prompt's token count, and its first entry."""
    p.score_via = "echo" if p.capabilities.echo_scoring else "prompt_logprobs"
    if p.scores_by_ids:
        ids = await p.tokenize(PROBE_TEXT)
        expected = f"{len(ids)} prompt tokens"
        payload = await p.http.request("POST", p.score_path(), p.score_body(ids), _raw, cached=False)
        n_prompt: int | None = len(ids)
    else:
        payload = await p.http.request("POST", p.score_path(), p.score_text_body(PROBE_TEXT), _raw, cached=False)
        expected, n_prompt = "the prompt's tokens", None
    values = _echo_entries(payload)
    first = values[0] if values else None
    usage = payload.get("usage") if isinstance(payload, dict) else None
    generated = usage.get("completion_tokens") if isinstance(usage, dict) and p.echo_max_tokens else 0
    generated = generated if isinstance(generated, int) else 0
    count = f"{len(values)} entries for {expected}" + (f" (+{generated} generated)" if generated else "")
    if n_prompt is not None:
        assert len(values) - generated == n_prompt, (
            f"{count}: the echo does not cover the prompt (ignored or broken echo)"
        )
    assert first is None, f"{count}; the first entry is {first!r}, expected null (nothing conditions it): off by one?"
    return f"{count}; first entry null"


async def _check_echo_text_alignment(p: OpenAICompatibleProvider) -> str:
    """Text prompts: the echoed token texts spell the prompt, so no tokenizer is needed."""
    body = p.score_text_body(PROBE_TEXT)
    payload = await p.http.request("POST", p.score_path(), body, _raw, cached=False)
    echoed = p.echoed_prompt_tokens(payload)
    scored = p.wire.align_echoed_text(echoed, PROBE_CONTEXT, PROBE_TEXT[len(PROBE_CONTEXT) :], p.echo_field)
    return (
        f"{len(echoed)} echoed tokens spell the prompt; continuation = last {len(scored.tokens)} ({scored.alignment})"
    )


async def _score(p: OpenAICompatibleProvider, via: str) -> list[float]:
    p.score_via = via  # type: ignore[assignment]
    scored = await p.score(ScoreRequest(context=PROBE_CONTEXT, continuation=PROBE_TEXT[len(PROBE_CONTEXT) :]))
    values = [t.logprob for t in scored.tokens]
    assert values and all(math.isfinite(v) and v <= 0 for v in values), "non-finite or positive logprobs"
    return values


async def _check_echo(p: OpenAICompatibleProvider) -> str:
    values = await _score(p, "echo")
    return f"{len(values)} continuation tokens scored, finite; NLL {-sum(values):.3f} nats"


async def _check_prompt_logprobs(p: OpenAICompatibleProvider) -> str:
    assert p.scores_by_ids, "prompt logprobs are asked for token ids, and this endpoint is scored with text (by echo)"
    values = await _score(p, "prompt_logprobs")
    try:
        echo = await _score(p, "echo")
    except errors.ProviderError:
        return f"{len(values)} tokens (echo unavailable to compare)"
    diff = max(abs(a - b) for a, b in zip(values, echo, strict=True))
    assert diff <= AGREEMENT_TOLERANCE, f"disagrees with echo by {diff:.2e} nats"
    return f"{len(values)} tokens; agrees with echo to {diff:.1e} nats"


async def _check_batch(p: OpenAICompatibleProvider) -> str:
    assert p.scores_by_ids, "text prompts are scored one per request"
    p.score_via = "echo" if type(p).declared_capabilities(p.model).echo_scoring else "prompt_logprobs"
    requests = [
        ScoreRequest(context=PROBE_CONTEXT, continuation=" jumps"),
        ScoreRequest(context="It was", continuation=" a sunny day"),
    ]
    singles = [await p.score(r) for r in requests]
    saved, p.max_batch_prompts = p.max_batch_prompts, len(requests)
    try:
        before = p.http.stats.by_path.get(p.score_path(), 0)
        batched = await p.score_many(requests)
        sent = p.http.stats.by_path.get(p.score_path(), 0) - before
    finally:
        p.max_batch_prompts = saved
    assert sent == 1, f"{len(requests)} prompts took {sent} scoring requests"
    for single, batch in zip(singles, batched, strict=True):
        diff = max(abs(a.logprob - b.logprob) for a, b in zip(single.tokens, batch.tokens, strict=True))
        assert diff <= AGREEMENT_TOLERANCE, f"batched scores differ from single ones by {diff:.2e}"
    return "2 prompts in one request, same scores as one by one"


def _top_count(payload: Any) -> int:
    """How many alternatives the first generated position came back with, whatever the shape."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    raw = choice.get("raw_output") if isinstance(choice.get("raw_output"), dict) else None
    logprobs = (raw or {}).get("completion_logprobs") or choice.get("logprobs")
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list) and logprobs["content"]:
        top = logprobs["content"][0].get("top_logprobs")
    elif isinstance(logprobs, dict) and isinstance(logprobs.get("top_logprobs"), list) and logprobs["top_logprobs"]:
        top = logprobs["top_logprobs"][0]
    else:
        raise AssertionError("no top logprobs in the answer")
    if not isinstance(top, dict | list):
        raise AssertionError(f"top logprobs are {type(top).__name__}, not a list or map")
    return len(top)


async def _ask_top(p: OpenAICompatibleProvider, k: int) -> int | str:
    """Alternatives returned for `k`, or the server's refusal."""
    path, body = p.generate_body(GenerateRequest(prompt=_target_prompt(p), max_tokens=1))
    if path == "/chat/completions" and isinstance(body.get("logprobs"), bool):
        body["top_logprobs"] = k
    else:
        body["logprobs"] = k
    try:
        return _top_count(await p.http.request("POST", path, body, _raw, cached=False))
    except errors.BadRequestError as exc:
        return f"refused ({str(exc).split(' answered ', 1)[-1][:80]})"


async def _check_top_logprobs(p: OpenAICompatibleProvider) -> str:
    declared = type(p).declared_capabilities(p.model).max_top_logprobs
    at_cap = await _ask_top(p, declared)
    if isinstance(at_cap, str):  # the declared cap is too high: find the real one
        low, high = 1, declared - 1
        best = 0
        while low <= high:
            mid = (low + high) // 2
            if isinstance(await _ask_top(p, mid), int):
                best, low = mid, mid + 1
            else:
                high = mid - 1
        raise AssertionError(f"declared {declared} but {declared} is {at_cap}; the real cap is {best}")
    above = await _ask_top(p, declared + 1)
    above_text = (
        f"{declared + 1}: {above}" if isinstance(above, str) else f"{declared + 1} also honoured ({above} returned)"
    )
    return f"declared {declared}: {at_cap} alternatives returned; {above_text}"


async def _one_token(p: OpenAICompatibleProvider, temperature: float, seed: int | None) -> Any:
    generation = await p.generate(
        GenerateRequest(prompt=_target_prompt(p), max_tokens=1, temperature=temperature, seed=seed)
    )
    completion = generation.completions[0]
    assert completion.tokens, "no generated token"
    return completion.tokens[0]


async def _check_raw_logprobs(p: OpenAICompatibleProvider) -> str:
    greedy = await _one_token(p, 0.0, None)
    for seed in range(SAMPLING_TRIES):
        sampled = await _one_token(p, 1.0, seed)
        same = sampled.text == greedy.text and (greedy.token_id is None or sampled.token_id == greedy.token_id)
        if same:
            diff = abs(sampled.logprob - greedy.logprob)
            assert diff <= RAW_LOGPROB_TOLERANCE, (
                f"processed: the greedy token {greedy.text!r} has logprob {greedy.logprob:.4f} at temperature 0"
                f" and {sampled.logprob:.4f} at temperature 1"
            )
            return f"raw: {greedy.text!r} has logprob {greedy.logprob:.4f} at temperature 0 and 1 (diff {diff:.1e})"
    raise AssertionError(
        f"undecided: temperature 1 never sampled the greedy token {greedy.text!r} in {SAMPLING_TRIES} seeds"
    )


async def _greedy(p: OpenAICompatibleProvider) -> Generation:
    return await p.generate(GenerateRequest(prompt=_target_prompt(p), max_tokens=16, temperature=0.0))


async def _check_greedy_repeat(p: OpenAICompatibleProvider) -> str:
    a, b = (await _greedy(p)).completions[0], (await _greedy(p)).completions[0]
    assert a.text == b.text, f"two greedy calls differ: {a.text[:40]!r} / {b.text[:40]!r}"
    diff = max((abs(x.logprob - y.logprob) for x, y in zip(a.tokens, b.tokens, strict=True)), default=0.0)
    return f"same text twice ({len(a.tokens)} tokens); logprobs within {diff:.1e}"


async def _check_template_leak(p: OpenAICompatibleProvider) -> str:
    texts = [(await p.generate(GenerateRequest(prompt=PROBE_MESSAGES, max_tokens=24))).completions[0].text]
    if p.capabilities.chat_prefill and type(p).declared_capabilities(p.model).chat_prefill:
        prefilled = (*PROBE_MESSAGES, PROBE_PREFILL)
        texts.append((await p.generate(GenerateRequest(prompt=prefilled, max_tokens=24))).completions[0].text)
    for text in texts:
        leaked = [m for m in TEMPLATE_MARKERS if m in text]
        assert not leaked, f"chat text carries template markers {leaked}: {text[:60]!r}"
        assert not text.lstrip().lower().startswith(("assistant\n", "assistant:", "model\n")), (
            f"a role header leaked: {text[:40]!r}"
        )
    return f"no template markers in {len(texts)} chat answer(s)"


async def _check_snapshot(p: OpenAICompatibleProvider) -> str:
    path, body = p.generate_body(GenerateRequest(prompt=_target_prompt(p), max_tokens=1))
    payload = await p.http.request("POST", path, body, _raw, cached=False)
    model = payload.get("model") if isinstance(payload, dict) else None
    fingerprint = payload.get("system_fingerprint") if isinstance(payload, dict) else None
    assert model is not None, "the answer names no model"
    renamed = "" if model == p.model else f" (asked for {p.model!r}: the service resolved it)"
    return f"model {model!r}{renamed}; system_fingerprint {fingerprint!r}"


CHECKS: tuple[tuple[str, Callable[[OpenAICompatibleProvider], Awaitable[str]]], ...] = (
    ("models", _check_models),
    ("generate_raw", _check_generate_raw),
    ("generate_chat", _check_generate_chat),
    ("chat_prefill", _check_chat_prefill),
    ("tokenize", _check_tokenize),
    ("chat_tokenize", _check_chat_tokenize),
    ("echo_shape", _check_echo_shape),
    ("echo_text_alignment", _check_echo_text_alignment),
    ("echo_scoring", _check_echo),
    ("prompt_logprobs", _check_prompt_logprobs),
    ("batch_prompts", _check_batch),
    ("top_logprobs_cap", _check_top_logprobs),
    ("raw_logprobs", _check_raw_logprobs),
    ("greedy_repeat", _check_greedy_repeat),
    ("template_leak", _check_template_leak),
    ("snapshot", _check_snapshot),
)
"""Order matters: `tokenize` decides whether the scoring checks send ids or text."""

"""Speak a hosted (or other self-hosted) service's wire format with a real vLLM behind it.

This machine cannot reach Together, Fireworks, DeepInfra or OpenRouter, nor run SGLang or
llama.cpp. To test their dialects on real numbers, `EmulatingTransport` takes the request our
adapter sends to the service, turns it into the equivalent vLLM request, sends it to the local
vLLM, and reshapes vLLM's answer into the response shape the service's *published API reference*
documents (`REFERENCES`). `scripts/build_dialect_fixtures.py` records those exchanges as fixtures
whose metadata says so (`"source": "published API reference"`, the page's URL), never
`recorded`: the shapes come from the references, the numbers from the real model.

What is emulated and what is not, per service (each `_Emulator` subclass says it again):
- Fireworks' `sampling_logprob` is the token's logprob under the sampling distribution. It is
  known exactly only at temperature 0 (the greedy token has probability 1: 0.0) and at
  temperature 1 with top_p 1 (equal to `logprob`); other settings are refused, not invented.
- llama.cpp ignores `echo`: an echo request is answered as the plain generation llama.cpp makes
  of it, which is the trap its dialect must refuse.
- OpenRouter's upstream is named by the first pinned `only` slug (OpenRouter reports which
  upstream served a request in `provider`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

REFERENCES = {
    "together": {
        "/completions": "https://docs.together.ai/reference/completions-1",
        "/chat/completions": "https://docs.together.ai/reference/chat-completions-1",
    },
    "fireworks": {
        "/completions": "https://docs.fireworks.ai/api-reference/post-completions",
        "/chat/completions": "https://docs.fireworks.ai/api-reference/post-chatcompletions",
    },
    "deepinfra": {
        "/completions": "https://deepinfra.com/docs/advanced/openai_api",
        "/chat/completions": "https://deepinfra.com/docs/advanced/openai_api",
    },
    "openrouter": {
        "/completions": "https://openrouter.ai/docs/api-reference/completion",
        "/chat/completions": "https://openrouter.ai/docs/features/provider-routing",
    },
    "sglang": {
        "/completions": "https://docs.sglang.io/basic_usage/openai_api_completions.html",
        "/chat/completions": "https://docs.sglang.io/basic_usage/openai_api_completions.html",
        "/generate": "https://docs.sglang.io/basic_usage/sampling_params.html",
        "/tokenize": "https://docs.sglang.io/basic_usage/native_api.html",
        "/detokenize": "https://docs.sglang.io/basic_usage/native_api.html",
    },
    "llamacpp": {
        "/completions": "https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
        "/chat/completions": "https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
        "/tokenize": "https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
        "/detokenize": "https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
    },
}

BASE_URLS = {
    "together": "https://api.together.xyz/v1",
    "fireworks": "https://api.fireworks.ai/inference/v1",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
    "openrouter": "https://openrouter.ai/api/v1",
    "sglang": "http://127.0.0.1:30000/v1",
    "llamacpp": "http://127.0.0.1:8080/v1",
}
"""The services' documented base URLs (self-hosted ones at their default ports)."""

VLLM_ONLY_CHOICE_FIELDS = ("stop_reason", "token_ids", "prompt_logprobs", "prompt_token_ids", "routed_experts")
VLLM_ONLY_FIELDS = ("service_tier", "kv_transfer_params", "ec_transfer_params", "metrics", "prompt_logprobs")


class EmulationError(Exception):
    """A request the emulator cannot answer truthfully."""


def _route(base_path: str, path: str) -> str:
    """The service route of `path` ("/completions", "/tokenize", ...), relative to its base."""
    root = base_path.removesuffix("/v1")
    if path.startswith(base_path + "/"):
        return path[len(base_path) :]
    if path.startswith(root + "/"):
        return path[len(root) :]
    raise EmulationError(f"{path} is not under {base_path}")


def _openai_choice(choice: dict) -> dict:
    return {k: v for k, v in choice.items() if k not in VLLM_ONLY_CHOICE_FIELDS}


def _openai_body(answer: dict) -> dict:
    return {
        **{k: v for k, v in answer.items() if k not in VLLM_ONLY_FIELDS},
        "choices": [_openai_choice(c) for c in answer["choices"]],
    }


def _bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


class _Emulator:
    dialect = ""

    def __init__(self, model: str, call: Callable[[str, str, Any], Any]):
        self.model = model
        self.call = call  # (method, vllm path, body) -> vLLM's JSON answer

    def answer(self, method: str, route: str, body: Any) -> Any:
        if method == "GET" and route == "/models":
            return self.call("GET", "/v1/models", None)
        handler = getattr(self, "route_" + route.strip("/").replace("/", "_"), None)
        if handler is None:
            raise EmulationError(f"{self.dialect}: no emulation of {method} {route}")
        return handler(body)

    # OpenAI-shaped defaults (DeepInfra, SGLang's OpenAI routes)
    def route_completions(self, body: dict) -> Any:
        return _openai_body(self.call("POST", "/v1/completions", body))

    def route_chat_completions(self, body: dict) -> Any:
        return _openai_body(self.call("POST", "/v1/chat/completions", body))


class DeepInfraEmulator(_Emulator):
    """DeepInfra's OpenAI-compatible API: OpenAI's response shapes."""

    dialect = "deepinfra"


class OpenRouterEmulator(_Emulator):
    """OpenRouter: OpenAI's shapes plus the serving upstream's name in `provider`."""

    dialect = "openrouter"

    def _upstream(self, body: dict) -> str:
        routing = body.pop("provider", None) or {}
        only = routing.get("only") or routing.get("order") or ["unpinned"]
        return str(only[0])

    def route_completions(self, body: dict) -> Any:
        upstream = self._upstream(body)
        return {**_openai_body(self.call("POST", "/v1/completions", body)), "provider": upstream}

    def route_chat_completions(self, body: dict) -> Any:
        upstream = self._upstream(body)
        return {**_openai_body(self.call("POST", "/v1/chat/completions", body)), "provider": upstream}


def _flat(tokens: list[str], values: list[Any], ids: list[int]) -> dict:
    return {"token_ids": ids, "tokens": tokens, "token_logprobs": values}


class TogetherEmulator(_Emulator):
    """Together: integer `logprobs`; flat `LogprobsPart` logprobs on both endpoints; completion
    choices without `index`; an echoed prompt in a top-level `prompt[]`."""

    dialect = "together"

    def route_completions(self, body: dict) -> Any:
        if not isinstance(body.get("prompt"), str):
            raise EmulationError("together: the prompt must be text")
        echo = bool(body.get("echo"))
        answer = self.call("POST", "/v1/completions", {**body, "return_token_ids": True})
        out = {k: answer[k] for k in ("id", "created", "model", "usage")}
        out["object"] = "text.completion"
        choices = []
        for choice in answer["choices"]:
            lp = choice["logprobs"]
            tokens, values, gen_ids = lp["tokens"], lp["token_logprobs"], choice["token_ids"]
            n_prompt = len(tokens) - len(gen_ids)
            choices.append(
                {
                    "text": choice["text"],
                    "finish_reason": choice["finish_reason"],
                    "logprobs": _flat(tokens[n_prompt:], values[n_prompt:], gen_ids),
                }
            )
            if echo:
                prompt_ids = choice["prompt_token_ids"]
                out["prompt"] = [
                    {"text": body["prompt"], "logprobs": _flat(tokens[:n_prompt], values[:n_prompt], prompt_ids)}
                ]
        out["choices"] = choices
        return out

    def route_chat_completions(self, body: dict) -> Any:
        k = int(body.pop("logprobs", 0) or 0)
        answer = self.call(
            "POST",
            "/v1/chat/completions",
            {**body, "logprobs": k > 0, "top_logprobs": max(k - 1, 0), "return_token_ids": True},
        )
        out = {key: answer[key] for key in ("id", "created", "model", "usage")}
        out["object"] = "chat.completion"
        out["choices"] = []
        for choice in answer["choices"]:
            content = choice["logprobs"]["content"]
            tokens = [bytes(e["bytes"]).decode("utf-8", "replace") for e in content]
            out["choices"].append(
                {
                    "index": choice["index"],
                    "finish_reason": choice["finish_reason"],
                    "message": {"role": "assistant", "content": choice["message"]["content"]},
                    "logprobs": _flat(tokens, [e["logprob"] for e in content], choice["token_ids"]),
                }
            )
        return out


class FireworksEmulator(_Emulator):
    """Fireworks: OpenAI's shapes with `prompt_token_ids` / `token_ids`, and `raw_output` (when
    asked) whose `completion_logprobs.content` entries carry `logprob` and `sampling_logprob`."""

    dialect = "fireworks"

    @staticmethod
    def _sampling_logprob(body: dict, logprob: float) -> float:
        temperature = float(body.get("temperature", 1.0))
        top_p = float(body.get("top_p", 1.0))
        if temperature == 0.0:
            return 0.0  # the greedy token has probability 1 under the sampling distribution
        if temperature == 1.0 and top_p == 1.0:
            return logprob
        raise EmulationError(
            f"fireworks: sampling_logprob at temperature {temperature}, top_p {top_p} is not known exactly"
        )

    def _raw_output(
        self, body: dict, entries: list[dict], prompt_ids: list[int], text: str, gen_ids: list[int]
    ) -> dict:
        content = []
        offset = 0
        for entry, token_id in zip(entries, gen_ids, strict=True):
            content.append(
                {
                    "token": entry["token"],
                    "logprob": entry["logprob"],
                    "sampling_logprob": self._sampling_logprob(body, entry["logprob"]),
                    "bytes": entry["bytes"],
                    "token_id": token_id,
                    "text_offset": offset,
                    "top_logprobs": entry.get("top_logprobs", []),
                }
            )
            offset += len(bytes(entry["bytes"]).decode("utf-8", "replace"))
        return {
            "prompt_fragments": [],
            "prompt_token_ids": prompt_ids,
            "completion": text,
            "completion_token_ids": gen_ids,
            "completion_logprobs": {"content": content},
        }

    def route_completions(self, body: dict) -> Any:
        raw = bool(body.pop("raw_output", False))
        answer = self.call("POST", "/v1/completions", {**body, "return_token_ids": True})
        out = _openai_body(answer)
        for choice, original in zip(out["choices"], answer["choices"], strict=True):
            lp = original["logprobs"]
            gen_ids = original["token_ids"]
            prompt_ids = original.get("prompt_token_ids") or []
            n_prompt = len(lp["tokens"]) - len(gen_ids) if body.get("echo") else 0
            choice["prompt_token_ids"] = prompt_ids
            choice["logprobs"]["token_ids"] = (prompt_ids if body.get("echo") else []) + gen_ids
            if body.get("echo"):
                prompt_text = body["prompt"] if isinstance(body["prompt"], str) else "".join(lp["tokens"][:n_prompt])
                choice["text"] = prompt_text + original["text"]
            if raw:
                entries = [
                    {
                        "token": t,
                        "logprob": v,
                        "bytes": _bytes(t),
                        "top_logprobs": [
                            {"token": a, "logprob": b, "bytes": _bytes(a)} for a, b in (top or {}).items()
                        ],
                    }
                    for t, v, top in zip(
                        lp["tokens"][n_prompt:],
                        lp["token_logprobs"][n_prompt:],
                        lp["top_logprobs"][n_prompt:],
                        strict=True,
                    )
                ]
                choice["raw_output"] = self._raw_output(body, entries, prompt_ids, original["text"], gen_ids)
        return out

    def route_chat_completions(self, body: dict) -> Any:
        raw = bool(body.pop("raw_output", False))
        answer = self.call("POST", "/v1/chat/completions", {**body, "return_token_ids": True})
        out = _openai_body(answer)
        for choice, original in zip(out["choices"], answer["choices"], strict=True):
            choice["message"] = {"role": "assistant", "content": original["message"]["content"]}
            if raw:
                choice["raw_output"] = self._raw_output(
                    body,
                    original["logprobs"]["content"],
                    original.get("prompt_token_ids") or [],
                    original["message"]["content"],
                    original["token_ids"],
                )
        return out


class SGLangEmulator(_Emulator):
    """SGLang: OpenAI routes; /tokenize `{tokens, count, max_model_len}`; /detokenize `{text}`;
    /generate with `meta_info.input_token_logprobs` as `[logprob, token_id, text]` triples (text
    null unless `return_text_in_logprobs`)."""

    dialect = "sglang"

    def route_tokenize(self, body: dict) -> Any:
        answer = self.call("POST", "/tokenize", {"model": self.model, **body})
        return {"tokens": answer["tokens"], "count": answer["count"], "max_model_len": answer["max_model_len"]}

    def route_detokenize(self, body: dict) -> Any:
        return {"text": self.call("POST", "/detokenize", {"model": self.model, **body})["prompt"]}

    def _generate_one(self, ids: list[int], body: dict) -> dict:
        params = body.get("sampling_params") or {}
        if params.get("max_new_tokens") != 0 or not body.get("return_logprob") or body.get("logprob_start_len") != 0:
            raise EmulationError(
                "sglang: only prompt scoring (max_new_tokens 0, return_logprob, logprob_start_len 0) is emulated"
            )
        answer = self.call(
            "POST",
            "/v1/completions",
            {
                "model": self.model,
                "prompt": ids,
                "echo": True,
                "max_tokens": 0,
                "logprobs": 0,
                "return_token_ids": True,
            },
        )
        choice = answer["choices"][0]
        values = choice["logprobs"]["token_logprobs"]
        return {
            "text": "",
            "meta_info": {
                "id": answer["id"],
                "finish_reason": {"type": "length", "length": 0},
                "prompt_tokens": len(ids),
                "completion_tokens": 0,
                "cached_tokens": 0,
                "input_token_logprobs": [
                    [v, i, t if body.get("return_text_in_logprobs") else None]
                    for v, i, t in zip(values, choice["prompt_token_ids"], choice["logprobs"]["tokens"], strict=True)
                ],
                "output_token_logprobs": [],
            },
        }

    def route_generate(self, body: dict) -> Any:
        ids = body["input_ids"]
        if ids and isinstance(ids[0], list):
            return [self._generate_one(one, body) for one in ids]
        return self._generate_one(ids, body)


class LlamaCppEmulator(_Emulator):
    """llama.cpp's server: logprobs as `content` entries `{id, token, bytes, logprob,
    top_logprobs}` on both endpoints; /tokenize `{content, add_special}`; /detokenize ->
    `{content}`; and `echo` ignored (answered as the plain generation it becomes)."""

    dialect = "llamacpp"

    @staticmethod
    def _entries(tokens: list[str], values: list[float], ids: list[int], tops: list[Any]) -> list[dict]:
        return [
            {
                "id": token_id,
                "token": token,
                "bytes": _bytes(token),
                "logprob": value,
                "top_logprobs": [{"token": a, "bytes": _bytes(a), "logprob": b} for a, b in (top or {}).items()],
            }
            for token, value, token_id, top in zip(tokens, values, ids, tops, strict=True)
        ]

    def route_completions(self, body: dict) -> Any:
        plain = {k: v for k, v in body.items() if k != "echo"}  # llama.cpp ignores echo
        plain["max_tokens"] = max(int(plain.get("max_tokens", 16) or 0), 1)
        plain["logprobs"] = max(int(plain.get("logprobs") or 0), 1)
        answer = self.call("POST", "/v1/completions", {**plain, "return_token_ids": True})
        out = {
            "id": answer["id"],
            "object": "text_completion",
            "created": answer["created"],
            "model": answer["model"],
            "usage": answer["usage"],
        }
        out["system_fingerprint"] = "b0000-emulated"
        out["choices"] = []
        for choice in answer["choices"]:
            lp = choice["logprobs"]
            entries = self._entries(lp["tokens"], lp["token_logprobs"], choice["token_ids"], lp["top_logprobs"])
            out["choices"].append(
                {
                    "text": choice["text"],
                    "index": choice["index"],
                    "logprobs": {"content": entries},
                    "finish_reason": choice["finish_reason"],
                }
            )
        return out

    def route_chat_completions(self, body: dict) -> Any:
        answer = self.call("POST", "/v1/chat/completions", {**body, "return_token_ids": True})
        out = _openai_body(answer)
        for choice, original in zip(out["choices"], answer["choices"], strict=True):
            choice["message"] = {"role": "assistant", "content": original["message"]["content"]}
            for entry, token_id in zip(choice["logprobs"]["content"], original["token_ids"], strict=True):
                entry["id"] = token_id
        return out

    def route_tokenize(self, body: dict) -> Any:
        answer = self.call(
            "POST",
            "/tokenize",
            {"model": self.model, "prompt": body["content"], "add_special_tokens": bool(body.get("add_special"))},
        )
        return {"tokens": answer["tokens"]}

    def route_detokenize(self, body: dict) -> Any:
        return {"content": self.call("POST", "/detokenize", {"model": self.model, "tokens": body["tokens"]})["prompt"]}


EMULATORS: dict[str, type[_Emulator]] = {
    e.dialect: e
    for e in (
        TogetherEmulator,
        FireworksEmulator,
        DeepInfraEmulator,
        OpenRouterEmulator,
        SGLangEmulator,
        LlamaCppEmulator,
    )
}


class EmulatingTransport(httpx.AsyncBaseTransport):
    """Answers `dialect` requests through the vLLM at `upstream` (its root URL), reshaped.

    `reference_for(path)` names the published page each answer's shape follows."""

    def __init__(self, dialect: str, upstream: str, model: str):
        self.dialect = dialect
        self.base_path = httpx.URL(BASE_URLS[dialect]).path.rstrip("/")
        self.upstream = upstream.rstrip("/")
        self._client = httpx.Client(timeout=300.0)
        self.emulator = EMULATORS[dialect](model, self._call)

    def _call(self, method: str, path: str, body: Any) -> Any:
        response = self._client.request(method, self.upstream + path, json=body)
        if response.status_code >= 400:
            raise EmulationError(f"vLLM answered {response.status_code} to {path}: {response.text[:300]}")
        return response.json()

    def reference_for(self, path: str) -> str:
        route = _route(self.base_path, path)
        return REFERENCES[self.dialect].get(route, REFERENCES[self.dialect]["/completions"])

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        route = _route(self.base_path, request.url.path)
        started = time.monotonic()
        answer = self.emulator.answer(request.method, route, body)
        headers = {"content-type": "application/json", "x-emulated-seconds": f"{time.monotonic() - started:.3f}"}
        return httpx.Response(200, headers=headers, content=json.dumps(answer).encode())

    async def aclose(self) -> None:
        self._client.close()

"""Recorded HTTP exchanges as reviewable JSON files: naming, redaction and matching.

Pure functions over plain data; the httpx transports that use them live in `providers.http`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.atomic import atomic_write

FIXTURE_FORMAT = 1
_KEPT_RESPONSE_HEADERS = (
    "content-type",
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def exchange_key(method: str, path: str, body: Any) -> str:
    """What identifies a request for replay: method, path and the canonical JSON body."""
    return hashlib.sha256(canonical_json([method.upper(), path, body]).encode()).hexdigest()


def fixture_name(method: str, path: str, body: Any) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"
    return f"{method.lower()}-{slug}-{exchange_key(method, path, body)[:16]}.json"


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    request_body: Any
    status: int
    response_headers: dict[str, str]
    response_body: Any
    meta: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FIXTURE_FORMAT,
            "meta": self.meta,
            "request": {"method": self.method, "path": self.path, "body": self.request_body},
            "response": {
                "status": self.status,
                "headers": {k: v for k, v in self.response_headers.items() if k.lower() in _KEPT_RESPONSE_HEADERS},
                "body": self.response_body,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Exchange:
        request, response = data["request"], data["response"]
        return cls(
            method=request["method"],
            path=request["path"],
            request_body=request["body"],
            status=response["status"],
            response_headers=response["headers"],
            response_body=response["body"],
            meta=data["meta"],
        )


def write_exchange(directory: Path, exchange: Exchange) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / fixture_name(exchange.method, exchange.path, exchange.request_body)
    return atomic_write(path, [json.dumps(exchange.to_json(), indent=1, ensure_ascii=False, sort_keys=True) + "\n"])


def load_exchanges(directory: Path) -> dict[str, Exchange]:
    """Every exchange recorded under `directory`, keyed by `exchange_key`."""
    exchanges: dict[str, Exchange] = {}
    for file in sorted(directory.rglob("*.json")):
        exchange = Exchange.from_json(json.loads(file.read_text()))
        exchanges[exchange_key(exchange.method, exchange.path, exchange.request_body)] = exchange
    return exchanges


def _is_batch(prompt: Any) -> bool:
    """A list of prompts (strings, or lists of token ids), not one prompt of token ids."""
    return isinstance(prompt, list) and bool(prompt) and not isinstance(prompt[0], int)


def prompt_units(method: str, path: str, body: Any) -> list[tuple[str, Any]]:
    """(key, body) per piece of work: each prompt of a batched completions request."""
    if method == "POST" and path == "/v1/completions" and isinstance(body, dict) and _is_batch(body.get("prompt")):
        return [(exchange_key(method, path, unit), unit) for unit in ({**body, "prompt": p} for p in body["prompt"])]
    return [(exchange_key(method, path, body), body)]


class PromptAnswers:
    """The recorded `/v1/completions` answers prompt by prompt, so that a batch never sent in
    that composition (a resumed run's cache misses, or one prompt asked again alone) is answered
    with the recorded numbers."""

    def __init__(self, exchanges: dict[str, Exchange]):
        self._units: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
        for exchange in exchanges.values():
            body, answer = exchange.request_body, exchange.response_body
            if exchange.path != "/v1/completions" or exchange.status != 200 or not isinstance(body, dict):
                continue
            if not all(isinstance(c, dict) and "index" in c for c in answer.get("choices") or []):
                continue  # a dialect whose choices carry no index (Together) is only answered as recorded
            n = int(body.get("n") or 1)
            template = {k: v for k, v in answer.items() if k not in ("choices", "usage")}
            for u, (key, _) in enumerate(prompt_units("POST", exchange.path, body)):
                choices = sorted((c for c in answer["choices"] if c["index"] // n == u), key=lambda c: c["index"])
                self._units[key] = ([{**c, "index": c["index"] % n} for c in choices], template)

    def answer(self, method: str, path: str, body: Any) -> dict[str, Any] | None:
        """The answer to a completions request whose every prompt was recorded, else None."""
        if method != "POST" or path != "/v1/completions" or not isinstance(body, dict):
            return None
        n = int(body.get("n") or 1)
        choices: list[dict[str, Any]] = []
        template: dict[str, Any] = {}
        for u, (key, _) in enumerate(prompt_units(method, path, body)):
            if key not in self._units:
                return None
            unit_choices, template = self._units[key]
            choices += [{**c, "index": u * n + c["index"]} for c in copy.deepcopy(unit_choices)]
        return {**template, "choices": choices, "usage": None}

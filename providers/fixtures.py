"""Recorded HTTP exchanges as reviewable JSON files: naming, redaction and matching.

Pure functions over plain data; the httpx transports that use them live in `providers.http`.
"""

from __future__ import annotations

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

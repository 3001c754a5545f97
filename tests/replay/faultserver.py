"""A fault-injecting OpenAI-compatible server for tests: a real HTTP server on 127.0.0.1
that answers like the vLLM it was recorded from, and misbehaves on cue.

Answers are REPLAYED from recorded fixtures (`providers.fixtures.load_exchanges`): an exact
(method, path, body) match first; a `/v1/completions` request whose batch of prompts was never
sent in that composition is answered prompt by prompt from the recorded batches (so a resumed
run that asks only for its cache misses still gets the recorded numbers). `GET /version`,
`/health` and `/v1/models` answer as vLLM does, and a request naming a model the fixtures do
not serve gets vLLM's 404. A request nothing answers gets a 400 saying so, and is logged in
`misses` so tests can insist there were none.

Faults are scripted with `Rule`s: "the Nth request to path P (optionally: matching a
predicate on the body) gets fault F", counted per rule:

    server.add(Rule(rate_limited(retry_after="2"), path="/v1/completions", nth=1))

Every request is logged (`requests`) with its body, status, fault and when it was answered,
so tests can count retries, measure waits and find repeated work.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from providers.fixtures import Exchange, PromptAnswers, canonical_json, exchange_key, load_exchanges, prompt_units

Body = Any
"""A decoded JSON request or response body (dict, list, str, None)."""


# -- faults --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or to) the replayed answer. Build them with the functions below."""

    name: str
    kind: str
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: Body = None
    seconds: float = 0.0
    transform: Callable[[Body], Body] | None = None
    event: threading.Event | None = None


def _error_body(message: str, error_type: str, code: int | str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def rate_limited(*, retry_after: str | None = None, retry_after_ms: str | None = None) -> Fault:
    """429 with `Retry-After` and/or `retry-after-ms`, as OpenAI sends them."""
    headers = tuple(
        (k, v) for k, v in (("Retry-After", retry_after), ("retry-after-ms", retry_after_ms)) if v is not None
    )
    body = _error_body(
        "Rate limit reached for requests per min. Please try again later.", "requests", "rate_limit_exceeded"
    )
    return Fault("429 rate limit", "status", 429, headers, body)


def quota_exceeded() -> Fault:
    """OpenAI's 429 that no wait can fix."""
    body = _error_body(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    )
    return Fault("429 insufficient_quota", "status", 429, (), body)


def error_status(status: int, message: str, error_type: str = "BadRequestError", param: str | None = None) -> Fault:
    """Any error status with a vLLM-style body (400, 401, 403, 404, 500, 503...)."""
    return Fault(f"{status}", "status", status, (), _error_body(message, error_type, status, param))


def read_timeout(seconds: float) -> Fault:
    """Say nothing for `seconds` (longer than the client's read timeout), then answer."""
    return Fault(f"silent {seconds:g}s", "sleep", seconds=seconds)


def reset_mid_body() -> Fault:
    """Send the status line, headers (full Content-Length) and half the body, then reset (RST)."""
    return Fault("reset mid-body", "reset")


def truncated_json() -> Fault:
    """A complete HTTP 200 whose JSON body is cut in half."""
    return Fault("truncated JSON", "truncate")


def invalid_json() -> Fault:
    """A complete HTTP 200 whose body is not JSON at all (a proxy's HTML page)."""
    return Fault("invalid JSON", "raw", body="<html><body><h1>502 Bad Gateway</h1></body></html>")


def mutated(name: str, transform: Callable[[Body], Body]) -> Fault:
    """The replayed answer with `transform` applied to (a deep copy of) its JSON body."""
    return Fault(name, "mutate", transform=transform)


def held(event: threading.Event, timeout_s: float = 60.0) -> Fault:
    """Keep the request in flight until `event` is set (e.g. while the client is killed)."""
    return Fault("held", "hold", seconds=timeout_s, event=event)


# Body transforms for the logprob faults. Each corrupts one value in the middle of a sequence
# that the client reads (positions chosen inside the scored / generated span).


def _middle(values: list) -> int:
    return len(values) // 2


def _tail(values: list) -> int:
    """A position in the continuation part of an echoed prompt (the context is at the front)."""
    return max(1, (3 * len(values)) // 4)


def set_generation_logprob(value: Any, *, choice: int = 0) -> Callable[[Body], Body]:
    """/v1/completions generation: `choices[i].logprobs.token_logprobs[middle] = value`;
    `value=MISSING` deletes that entry (the list gets shorter than `tokens`)."""

    def transform(body: Body) -> Body:
        values = _by_index(body["choices"], choice)["logprobs"]["token_logprobs"]
        _set(values, _middle(values), value)
        return body

    return transform


def set_chat_logprob(value: Any, *, choice: int = 0) -> Callable[[Body], Body]:
    """/v1/chat/completions: `choices[i].logprobs.content[middle].logprob = value` (or deleted)."""

    def transform(body: Body) -> Body:
        content = _by_index(body["choices"], choice)["logprobs"]["content"]
        _set_key(content[_middle(content)], "logprob", value)
        return body

    return transform


def set_echo_logprob(value: Any, *, choice: int = 0) -> Callable[[Body], Body]:
    """Echo scoring: `choices[i].logprobs.token_logprobs[tail] = value` (or the entry deleted)."""

    def transform(body: Body) -> Body:
        values = _by_index(body["choices"], choice)["logprobs"]["token_logprobs"]
        _set(values, _tail(values), value)
        return body

    return transform


def set_prompt_logprob(value: Any, *, choice: int = 0) -> Callable[[Body], Body]:
    """`prompt_logprobs` scoring: the scored token's `logprob` at a tail position (or deleted)."""

    def transform(body: Body) -> Body:
        entries = _by_index(body["choices"], choice)["prompt_logprobs"]
        entry = entries[_tail(entries)]
        for candidate in entry.values():  # one dict per token id; the sent token is among them
            _set_key(candidate, "logprob", value)
        return body

    return transform


def drop_echo_token(*, choice: int = 0) -> Callable[[Body], Body]:
    """Echo scoring with one token fewer than the prompt has (a server that echoes wrong)."""

    def transform(body: Body) -> Body:
        logprobs = _by_index(body["choices"], choice)["logprobs"]
        for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
            if isinstance(logprobs.get(key), list):
                logprobs[key] = logprobs[key][:-1]
        return body

    return transform


MISSING = object()
"""Pass as the value to delete the logprob instead of replacing it."""


# Transforms in the other dialects' shapes (fixtures/<dialect>-smollm2). Each corrupts what that
# dialect's parser reads, the way its service's reference (or a known bug) says it can go wrong.


def ignore_echo() -> Callable[[Body], Body]:
    """llama.cpp's server: `echo` silently ignored, so only the one generated entry comes back
    (OpenAI shape: every choice's logprobs cut to their last entry; Together: no `prompt`)."""

    def transform(body: Body) -> Body:
        if isinstance(body.get("prompt"), list):  # Together's top-level echo
            del body["prompt"]
            return body
        for choice in body["choices"]:
            logprobs = choice["logprobs"]
            for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset", "token_ids"):
                if isinstance(logprobs.get(key), list):
                    logprobs[key] = logprobs[key][-1:]
        return body

    return transform


def null_logprobs(*, choice: int = 0) -> Callable[[Body], Body]:
    """OpenRouter's upstreams: `logprobs: null` although they were asked for."""

    def transform(body: Body) -> Body:
        body["choices"][choice]["logprobs"] = None
        return body

    return transform


def set_raw_logprob(value: Any, *, choice: int = 0) -> Callable[[Body], Body]:
    """Fireworks: `choices[i].raw_output.completion_logprobs.content[middle].logprob = value`
    (`MISSING` deletes it, leaving only `sampling_logprob`)."""

    def transform(body: Body) -> Body:
        content = body["choices"][choice]["raw_output"]["completion_logprobs"]["content"]
        _set_key(content[_middle(content)], "logprob", value)
        return body

    return transform


def answered_by(upstream: str) -> Callable[[Body], Body]:
    """OpenRouter: the answer names an upstream that was not pinned."""

    def transform(body: Body) -> Body:
        body["provider"] = upstream
        return body

    return transform


def set_prompt_part_logprob(value: Any) -> Callable[[Body], Body]:
    """Together's echo: `prompt[0].logprobs.token_logprobs[tail] = value` (or deleted)."""

    def transform(body: Body) -> Body:
        values = body["prompt"][0]["logprobs"]["token_logprobs"]
        _set(values, _tail(values), value)
        return body

    return transform


def set_flat_logprob(value: Any, *, choice: int = 0) -> Callable[[Body], Body]:
    """Together's generation: `choices[i].logprobs.token_logprobs[middle] = value` (or deleted)."""

    def transform(body: Body) -> Body:
        values = body["choices"][choice]["logprobs"]["token_logprobs"]
        _set(values, _middle(values), value)
        return body

    return transform


def set_input_logprob(value: Any) -> Callable[[Body], Body]:
    """SGLang's /generate: the logprob of `meta_info.input_token_logprobs[tail]` (first answer of a batch)."""

    def transform(body: Body) -> Body:
        answer = body[0] if isinstance(body, list) else body
        entries = answer["meta_info"]["input_token_logprobs"]
        entries[_tail(entries)][0] = value
        return body

    return transform


def set_content_logprob(value: Any, *, choice: int = 0) -> Callable[[Body], Body]:
    """llama.cpp (both endpoints): `choices[i].logprobs.content[middle].logprob = value` (or deleted)."""

    def transform(body: Body) -> Body:
        content = body["choices"][choice]["logprobs"]["content"]
        _set_key(content[_middle(content)], "logprob", value)
        return body

    return transform


def delete_path(*path: str | int) -> Callable[[Body], Body]:
    """A malformed shape: the field at `path` removed (e.g. `("meta_info",)`, `("choices", 0, "raw_output")`)."""

    def transform(body: Body) -> Body:
        target = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return body

    return transform


def _by_index(choices: list, index: int) -> dict:
    return next(c for c in choices if c.get("index") == index)


def _set(values: list, j: int, value: Any) -> None:
    if value is MISSING:
        del values[j]
    else:
        values[j] = value


def _set_key(entry: dict, key: str, value: Any) -> None:
    if value is MISSING:
        entry.pop(key, None)
    else:
        entry[key] = value


# -- a rate limit --------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: `1m30s`, `6s`, `250ms`."""
    if seconds < 1.0:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}m{rest:.3g}s" if minutes else f"{rest:.3g}s"


class TokenBucket:
    """A server-side request limit: `rate_per_s` tokens refill a bucket of `burst`; a request
    without a token gets 429 with `retry-after-ms` (when the next token comes). `headers=True`
    also sends OpenAI's `x-ratelimit-{limit,remaining,reset}-requests` on every answer."""

    def __init__(
        self, rate_per_s: float, burst: int, *, headers: bool = True, clock: Callable[[], float] = time.monotonic
    ):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.headers = headers
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, dict[str, str]]:
        """(allowed, headers to send)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate_per_s)
            self._at = now
            allowed = self._tokens >= 1.0
            if allowed:
                self._tokens -= 1.0
            headers: dict[str, str] = {}
            if not allowed:
                headers["retry-after-ms"] = str(max(1, math.ceil((1.0 - self._tokens) / self.rate_per_s * 1000)))
            if self.headers:
                headers["x-ratelimit-limit-requests"] = str(self.burst)
                headers["x-ratelimit-remaining-requests"] = str(int(self._tokens))
                headers["x-ratelimit-reset-requests"] = format_duration((self.burst - self._tokens) / self.rate_per_s)
            return allowed, headers


# -- rules and the request log -------------------------------------------------------------


@dataclass
class Rule:
    """`fault` for the `nth` (1-based; an int, a collection, or None for every) request that
    goes to `path` (None: any path) and satisfies `match(body)`. Each rule counts its own."""

    fault: Fault
    path: str | None = None
    nth: int | Collection[int] | None = None
    match: Callable[[Body], bool] | None = None
    seen: int = 0
    fired: int = 0

    def applies(self, path: str, body: Body) -> bool:
        """Counts the request if it matches; True when this one gets the fault."""
        if self.path is not None and path != self.path:
            return False
        if self.match is not None and not self.match(body):
            return False
        self.seen += 1
        if self.nth is None:
            hit = True
        elif isinstance(self.nth, int):
            hit = self.seen == self.nth
        else:
            hit = self.seen in self.nth
        self.fired += hit
        return hit


@dataclass
class Served:
    """One request as the server saw it."""

    method: str
    path: str
    body: Body
    headers: dict[str, str]
    units: list[str]
    """Keys of the per-prompt pieces of work in it (a batched /v1/completions has several)."""
    received_at: float
    fault: str | None = None
    status: int | None = None
    answered_at: float | None = None
    """When the last byte of the answer was written; None while in flight (or never)."""

    @property
    def clean_ok(self) -> bool:
        """Answered in full with the true 200 (no fault)."""
        return self.status == 200 and self.fault is None and self.answered_at is not None


# -- replay --------------------------------------------------------------------------------


class Replay:
    """The recorded answers of one or more fixture folders."""

    def __init__(self, directories: Iterable[Path]):
        self.exchanges: dict[str, Exchange] = {}
        for directory in directories:
            self.exchanges.update(load_exchanges(directory))
        self.models = sorted(
            {e.meta["model"] for e in self.exchanges.values() if "model" in e.meta}
            | {
                e.request_body["model"]
                for e in self.exchanges.values()
                if isinstance(e.request_body, dict) and "model" in e.request_body
            }
        )
        self.version = next((e.meta.get("version") for e in self.exchanges.values() if e.meta.get("version")), "0.0.0")
        self.prompts = PromptAnswers(self.exchanges)

    def answer(self, method: str, path: str, body: Body) -> tuple[int, dict[str, str], Body] | None:
        """(status, headers, JSON body) as recorded, or None when nothing was recorded for it."""
        exchange = self.exchanges.get(exchange_key(method, path, body))
        if exchange is not None:
            return exchange.status, dict(exchange.response_headers), copy.deepcopy(exchange.response_body)
        recombined = self.prompts.answer(method, path, body)
        if recombined is not None:
            return 200, {"content-type": "application/json"}, recombined
        if method == "GET" and path == "/version":
            return 200, {"content-type": "application/json"}, {"version": self.version}
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "owned_by": "vllm", "root": m, "parent": None} for m in self.models]
            return 200, {"content-type": "application/json"}, {"object": "list", "data": data}
        if method == "GET" and path == "/health":
            return 200, {}, ""
        return None


# -- the server ----------------------------------------------------------------------------


class FaultServer:
    """Replays `fixture_dirs` on 127.0.0.1:<free port>, applying `rules`; a context manager.

    `url` is the OpenAI-style base URL (ending in /v1). `delay_s` slows every answer down.
    """

    def __init__(
        self, *fixture_dirs: Path, rules: Iterable[Rule] = (), delay_s: float = 0.0, bucket: TokenBucket | None = None
    ):
        self.replay = Replay(fixture_dirs)
        self.rules: list[Rule] = list(rules)
        self.delay_s = delay_s
        self.bucket = bucket
        """A rate limit enforced before any rule or replay (429 answers are logged as faults)."""
        self.requests: list[Served] = []
        self.misses: list[str] = []
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), name="faultserver", daemon=True)
        self._holds: list[threading.Event] = []

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def url_like(self, base_url: str) -> str:
        """This server under the path of another base URL (`https://api.fireworks.ai/inference/v1`
        -> `http://127.0.0.1:PORT/inference/v1`), to replay a service's fixtures."""
        return self.root + urlsplit(base_url).path.rstrip("/")

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        for event in self._holds:
            event.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, *rules: Rule) -> FaultServer:
        with self._lock:
            self.rules.extend(rules)
            self._holds.extend(r.fault.event for r in rules if r.fault.event is not None)
        return self

    def clear(self) -> None:
        """Drop the rules and the log; the server keeps running."""
        with self._lock:
            self.rules.clear()
            self.requests.clear()
            self.misses.clear()

    # -- what tests read ----------------------------------------------------------------

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def by_path(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(r.path for r in self.requests))

    @property
    def faults_injected(self) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.fault is not None)

    def log(self) -> list[Served]:
        with self._lock:
            return list(self.requests)

    # -- the handler's side -------------------------------------------------------------

    def _begin(self, method: str, path: str, body: Body, headers: dict[str, str]) -> tuple[Served, Fault | None]:
        with self._lock:
            served = Served(
                method, path, body, headers, [k for k, _ in prompt_units(method, path, body)], time.monotonic()
            )
            self.requests.append(served)
            fault = None
            for rule in self.rules:
                if rule.applies(path, body) and fault is None:
                    fault = rule.fault
            served.fault = fault.name if fault is not None else None
            return served, fault


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs when 8 workers connect at once (1 s retransmit)
    owner: FaultServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle stalls on small answers

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        owner = self.server.owner
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:  # the client gave up mid-request (cancelled, killed): nothing to answer
            self.close_connection = True
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = self.path.split("?", 1)[0]
        served, fault = owner._begin(method, path, body, {k.lower(): v for k, v in self.headers.items()})
        self._extra_headers: dict[str, str] = {}
        if owner.bucket is not None:
            allowed, self._extra_headers = owner.bucket.take()
            if not allowed:
                served.fault = "429 token bucket"
                error = _error_body("Rate limit reached for requests", "requests", "rate_limit_exceeded")
                try:
                    return self._send(served, 429, {}, error)
                except (ConnectionError, OSError):
                    return
        if owner.delay_s:
            time.sleep(owner.delay_s)
        with contextlib.suppress(ConnectionError, OSError):  # the client went away (timeout, kill)
            self._respond(owner, served, fault, method, path, body)

    def _respond(
        self, owner: FaultServer, served: Served, fault: Fault | None, method: str, path: str, body: Body
    ) -> None:
        if fault is not None and fault.kind == "status":
            return self._send(served, fault.status, dict(fault.headers), fault.body)
        if fault is not None and fault.kind == "raw":
            return self._send(served, 200, {"content-type": "application/json"}, None, raw=str(fault.body).encode())
        if fault is not None and fault.kind == "hold":
            assert fault.event is not None
            fault.event.wait(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "sleep":
            time.sleep(fault.seconds)

        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and model not in owner.replay.models:
            served.fault = served.fault or "404 unknown model"  # the caller's fault, but one all the same
            error = _error_body(f"The model `{model}` does not exist.", "NotFoundError", 404, "model")
            return self._send(served, 404, {}, error)
        recorded = owner.replay.answer(method, path, body)
        if recorded is None:
            owner.misses.append(f"{method} {path} {canonical_json(body)[:300]}")
            message = f"faultserver: no recorded exchange for {method} {path} (a test asked for unrecorded work)"
            return self._send(served, 400, {}, _error_body(message, "BadRequestError", 400))
        status, headers, answer = recorded
        if fault is not None and fault.kind == "mutate":
            assert fault.transform is not None
            answer = fault.transform(answer)
        content = _dumps(answer)
        if fault is not None and fault.kind == "truncate":
            content = content[: len(content) // 2]
        if fault is not None and fault.kind == "reset":
            return self._reset_mid_body(served, status, content)
        self._send(served, status, headers, None, raw=content)

    def _send(
        self, served: Served, status: int, headers: dict[str, str], body: Body, *, raw: bytes | None = None
    ) -> None:
        content = raw if raw is not None else _dumps(body)
        self.send_response(status)
        headers = {**getattr(self, "_extra_headers", {}), **{k.lower(): v for k, v in headers.items()}}
        headers.setdefault("content-type", "application/json")
        for name, value in headers.items():
            if name != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
        self.wfile.flush()
        served.status, served.answered_at = status, time.monotonic()

    def _reset_mid_body(self, served: Served, status: int, content: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content[: len(content) // 2])
        self.wfile.flush()
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
        served.status = status


def _dumps(body: Body) -> bytes:
    if isinstance(body, str):
        return body.encode()
    # allow_nan: a NaN fault must reach the client as the bare `NaN` token Python's json reads.
    return json.dumps(body, allow_nan=True).encode()


def finite_logprobs(record: dict) -> bool:
    """Every logprob and statistic in one results.jsonl record is a real number, none a sentinel."""
    numbers: list[float] = []
    for side in ("target", "reference", "gaps"):
        if record.get(side):
            numbers += [v for v in record[side].values() if isinstance(v, float)]
    for side in ("target_tokens", "reference_tokens"):
        numbers += [t["logprob"] for t in record.get(side) or []]
    return all(isinstance(x, int | float) and math.isfinite(x) and x > -9999.0 for x in numbers) and all(
        t["logprob"] <= 1e-6 for side in ("target_tokens", "reference_tokens") for t in record.get(side) or []
    )

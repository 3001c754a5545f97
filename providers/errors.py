"""The provider error tree. Errors carry data (the role, the status, what the server said);
the caller words the advice (the CLI names its flags: `blackbox_audit.advice`).

ProviderError
├── CapabilityError      the endpoint cannot do what was asked (raised before any request)
├── TransportError       connection refused/reset, timeouts (retried; not at first contact)
├── APIStatusError       the server answered with an error status
│   ├── RequestTimeoutError   408 (retried)
│   ├── ConflictError         409 (retried)
│   ├── RateLimitError        429 (retried, honouring Retry-After)
│   ├── QuotaExceededError    429 insufficient_quota (never retried)
│   ├── ServerError           5xx but 501 (retried)
│   ├── BadRequestError       400, 501 and other 4xx (never retried)
│   ├── AuthenticationError   401 / 403 (never retried)
│   └── NotFoundError         404 (never retried; `served_models` when it named our model)
├── ResponseShapeError   the response is not what the endpoint's dialect promises
├── AlignmentError       scored tokens do not cover the continuation's bytes
└── FixtureMissError     replay met a request that was never recorded
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from providers.ratelimit import parse_retry_after


class ProviderError(Exception):
    """Base of every error raised by `providers`. `role` ("target", "reference" or "") says
    which endpoint of an audit it came from, for the caller's advice."""

    role: str = ""


class CapabilityError(ProviderError):
    """Asked for something the endpoint cannot do; names what is missing and the alternative."""


TransportKind = Literal["refused", "tls", "timeout", "lost", "other"]


class TransportError(ProviderError):
    """The request did not get an HTTP answer. `kind`: refused (nothing listens), tls (the TLS
    handshake failed: often https:// to a plain-HTTP server), timeout, lost (reset mid-answer)."""

    def __init__(self, message: str, *, url: str, kind: TransportKind, retryable: bool = True, role: str = ""):
        super().__init__(message)
        self.url = url
        self.kind = kind
        self.retryable = retryable
        self.role = role


class APIStatusError(ProviderError):
    """`server_message` and `code` are what the server said; `model` what was asked for."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int,
        url: str,
        retry_after_s: float | None = None,
        server_message: str = "",
        code: str | None = None,
        model: str | None = None,
        role: str = "",
    ):
        super().__init__(message)
        self.status = status
        self.url = url
        self.retry_after_s = retry_after_s
        self.server_message = server_message
        self.code = code
        self.model = model
        self.role = role


class RequestTimeoutError(APIStatusError):
    retryable = True


class ConflictError(APIStatusError):
    retryable = True


class RateLimitError(APIStatusError):
    retryable = True


class QuotaExceededError(APIStatusError):
    """A 429 that waiting cannot fix: the account is out of credit."""


class ServerError(APIStatusError):
    retryable = True


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    """`served_models`: the models the server lists, when the 404 was about the model asked
    for (None when it was about the route, or the server could not say)."""

    served_models: list[str] | None = None

    @property
    def names_model(self) -> bool:
        """Whether the server's message quotes the model we asked for (vLLM and OpenAI do:
        "The model `x` does not exist."), rather than a missing route."""
        return bool(self.model) and any(f"{q}{self.model}{q}" in self.server_message for q in "`'\"")


class ResponseShapeError(ProviderError):
    """Malformed response; raised instead of ever letting a bad number reach a score."""

    def __init__(self, provider: str, field: str, problem: str, *, retryable: bool = False):
        super().__init__(f"{provider}: malformed response at {field}: {problem}")
        self.provider = provider
        self.field = field
        self.problem = problem
        self.retryable = retryable


class AlignmentError(ProviderError):
    """The tokens the endpoint scored cannot be mapped onto the continuation's bytes."""


class FixtureMissError(ProviderError):
    """Replay raises this for an unrecorded request, so tests never reach the network."""


def is_retryable(error: BaseException) -> bool:
    return bool(getattr(error, "retryable", False))


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first real error inside a task group's ExceptionGroup, so callers see one error."""
    first = group.exceptions[0]
    return first_error(first) if isinstance(first, BaseExceptionGroup) else first


def _server_message(body: bytes) -> tuple[str, str | None]:
    """The server's own message and error code/type, from OpenAI-style or plain bodies."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500], None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail") or json.dumps(err)[:500]
            code = err.get("code") or err.get("type")
            return str(message), str(code) if code is not None else None
        if isinstance(err, str):
            return err, None
        if "detail" in data:
            return str(data["detail"]), None
    return str(data)[:500], None


def status_error(
    status: int,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: str,
    role: str = "",
    model: str | None = None,
) -> APIStatusError:
    """Map an error status to the typed tree, keeping what the server said as data."""
    message, code = _server_message(body)
    retry_after = parse_retry_after(headers)
    where = f"{provider} {url} answered {status}"
    kwargs: dict[str, Any] = dict(
        status=status, url=url, retry_after_s=retry_after, server_message=message, code=code, model=model, role=role
    )
    if status == 429 and code is not None and "insufficient_quota" in code:
        return QuotaExceededError(f"{where}: {message} (insufficient_quota: retrying cannot help)", **kwargs)
    if status == 429:
        return RateLimitError(f"{where}: {message}", **kwargs)
    if status == 408:
        return RequestTimeoutError(f"{where}: {message}", **kwargs)
    if status == 409:
        return ConflictError(f"{where}: {message}", **kwargs)
    if status == 501:
        return BadRequestError(f"{where} (not implemented): {message}", **kwargs)  # will not heal
    if status >= 500:
        return ServerError(f"{where}: {message}", **kwargs)
    if status in (401, 403):
        return AuthenticationError(f"{where}: {message}", **kwargs)
    if status == 404:
        return NotFoundError(f"{where}: {message}", **kwargs)
    return BadRequestError(f"{where}: {message}", **kwargs)

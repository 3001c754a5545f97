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

from typing import Literal


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

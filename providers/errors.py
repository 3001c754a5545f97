"""The provider error tree; every message says what to do next.

ProviderError
├── CapabilityError      the endpoint cannot do what was asked (raised before any request)
├── TransportError       connection refused/reset, timeouts (retried)
├── APIStatusError       the server answered with an error status
│   ├── RequestTimeoutError   408 (retried)
│   ├── ConflictError         409 (retried)
│   ├── RateLimitError        429 (retried, honouring Retry-After)
│   ├── QuotaExceededError    429 insufficient_quota (never retried)
│   ├── ServerError           5xx (retried)
│   ├── BadRequestError       400 and other 4xx (never retried)
│   ├── AuthenticationError   401 / 403 (never retried)
│   └── NotFoundError         404 (never retried)
├── ResponseShapeError   the response is not what the endpoint's dialect promises
├── AlignmentError       scored tokens do not cover the continuation's bytes
└── FixtureMissError     replay met a request that was never recorded
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base of every error raised by `providers`."""


class CapabilityError(ProviderError):
    """Asked for something the endpoint cannot do; names what is missing and the alternative."""


class TransportError(ProviderError):
    """The request did not get an HTTP answer (connect, read, reset, timeout)."""

    retryable = True


class APIStatusError(ProviderError):
    retryable = False

    def __init__(self, message: str, *, status: int, url: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.status = status
        self.url = url
        self.retry_after_s = retry_after_s


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
    pass


class ResponseShapeError(ProviderError):
    """Malformed response; raised instead of ever letting a bad number reach a score."""

    def __init__(self, provider: str, field: str, problem: str, *, retryable: bool = False):
        super().__init__(f"{provider}: malformed response at {field}: {problem}")
        self.provider = provider
        self.field = field
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

"""The CLI's words for a failure: one line that says what happened and what to do next.

Providers raise errors that carry data (the role, the status, what the server said, what
kind of connection failure); only here are they turned into advice that names this
command's flags and environment variables.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from blackbox_audit.budget import TargetBudget
from blackbox_audit.config import api_key_variables
from providers import errors


def _flag(role: str, name: str) -> str:
    return f"--{role}-{name}" if role else f"--{name}"


def advice(error: BaseException) -> str | None:
    """What to do about `error`, or None when its message says all there is."""
    role = getattr(error, "role", "")
    if isinstance(error, errors.AuthenticationError):
        variables = " / ".join(f"${name}" for name in api_key_variables(role, error.url))
        return f"check the API key: {_flag(role, 'api-key')}, or {variables}"
    if isinstance(error, errors.NotFoundError):
        if error.names_model:
            listing = (
                f"the server serves: {', '.join(error.served_models)}"
                if error.served_models
                else "GET /models did not list the served models"
            )
            return f"{listing}; fix {_flag(role, 'model')}"
        path = urlsplit(error.url).path
        if "/v1" not in path:
            return f"no such route; an OpenAI-compatible base URL usually ends in /v1: fix {_flag(role, 'base-url')}"
        return f"no such route at this server: check {_flag(role, 'base-url')}"
    if isinstance(error, errors.QuotaExceededError):
        return "the account is out of credit: add credit or use another key"
    if isinstance(error, errors.BadRequestError) and error.status == 501:
        return f"the server does not implement this route: is {_flag(role, 'base-url')} an OpenAI-compatible endpoint?"
    if isinstance(error, errors.RateLimitError):
        return f"still rate-limited after every retry: lower {_flag(role, 'concurrency')} or try again later"
    if isinstance(error, errors.ServerError):
        return "the server kept failing after every retry: see its log; rerun to resume from the cache"
    if isinstance(error, errors.TransportError):
        if error.kind == "refused":
            return f"nothing answers there: is the server running? (else fix {_flag(role, 'base-url')})"
        if error.kind == "tls":
            return (
                f"the TLS handshake failed: if the server speaks plain HTTP, use http:// in {_flag(role, 'base-url')}"
            )
        if error.kind == "timeout":
            if "ConnectTimeout" in str(error):
                return f"no connection within the connect timeout: is the host reachable? (check {_flag(role, 'base-url')})"
            return "the server did not answer in time after every retry; rerun to resume from the cache"
        return "the connection kept failing after every retry; rerun to resume from the cache"
    return None


def error_line(error: BaseException) -> str:
    """One line: the error, then the advice."""
    text = " ".join(str(error).split()) or type(error).__name__
    hint = advice(error)
    return f"{text} ({hint})" if hint else text


def budget_line(budget: TargetBudget, *, use_cache: bool) -> str:
    """The one line of an audit stopped by --max-target-tokens: how far it got, how to finish."""
    resume = (
        "rerun the same command with it to finish: the finished prefills come from the cache"
        if use_cache
        else "rerun with it to finish (the cache is off: the finished prefills are generated again)"
    )
    return (
        f"budget reached: --max-target-tokens {budget.max_target_tokens} covered {budget.prefills_done} of"
        f" {budget.prefills_total} prefills ({budget.reserved_tokens} tokens reserved), whose outputs are written;"
        f" the whole audit needs --max-target-tokens {budget.needed_tokens}: {resume}"
    )

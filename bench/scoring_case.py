"""Case 1: the scoring job (the same (context, continuation) pairs on the reference server)
through our providers, lm-evaluation-harness and a naive openai-client loop, plus the
server's best case over HTTP (all prompts in one request)."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx

from blackbox_audit.pool import chunked, map_bounded
from providers.records import ScoreRequest
from providers.registry import connect

BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class Run:
    """One way of doing one job: wall time, requests, and per-pair scored token logprobs."""

    name: str
    wall_s: float
    http_requests: int
    scored_tokens: int
    client_cpu_s: float | None = None
    # per pair: (all prompt ids, logprobs of its scored continuation tokens) or None when unknown
    per_pair: list[tuple[list[int], list[float]] | None] = field(default_factory=list)
    note: str = ""
    error: str = ""
    sent_total: int | None = None  # every request this path sent to the server, untimed ones too
    interference: str = ""
    tries: int = 1

    @property
    def tokens_per_s(self) -> float:
        return self.scored_tokens / self.wall_s if self.wall_s else float("nan")


async def prepare_ids(url: str, model: str, pairs: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
    """(context ids + continuation ids, n continuation ids) per pair, as the provider tokenizes
    them (context with special tokens, continuation alone without); not timed."""
    provider = await connect(url, model)
    try:
        out = []
        for context, continuation in pairs:
            ctx = await provider.tokenize(context)
            cont = await provider.tokenize(continuation, add_special_tokens=False)
            out.append((ctx + cont, len(cont)))
        return out
    finally:
        await provider.aclose()


async def warm_up(url: str, model: str) -> None:
    async with httpx.AsyncClient(timeout=600) as client:
        body = {"model": model, "prompt": [list(range(100, 160))] * 8, "echo": True, "max_tokens": 0, "logprobs": 0}
        (await client.post(f"{url}/completions", json=body)).raise_for_status()


async def run_ours(
    url: str,
    model: str,
    pairs: list[tuple[str, str]],
    prepared: list[tuple[list[int], int]],
    *,
    batch_size: int,
    workers: int,
) -> Run:
    """`score_many` per batch of `batch_size` pairs through the bounded pool; no cache. Connected
    as the audit connects (`tokenizer="auto"`: the served folder's tokenizer.json, checked against
    /tokenize), timed from after connecting. (`prepared` only labels the results with their
    full prompt ids afterwards.)"""
    provider = await connect(url, model, max_concurrency=workers, cache=None, tokenizer="auto")
    requests = [ScoreRequest(context=c, continuation=x) for c, x in pairs]
    try:
        setup = dict(provider.http.stats.by_path)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        batches = await map_bounded(chunked(requests, batch_size), provider.score_many, workers=workers)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        by_path = {k: v - setup.get(k, 0) for k, v in provider.http.stats.by_path.items() if v - setup.get(k, 0)}
        requests_sent = sum(by_path.values())
        sent_total = provider.http.stats.http_requests  # connect's too: /version, /models, the tokenizer check
    finally:
        await provider.aclose()
    scored = [s for batch in batches for s in batch]
    per_pair = []
    for s, (ids, n) in zip(scored, prepared, strict=True):
        same = s.alignment == "exact" and [t.token_id for t in s.tokens] == ids[-n:]
        per_pair.append((ids, [t.logprob for t in s.tokens]) if same else None)
    widened = sum(1 for s in scored if s.alignment != "exact")
    paths = ", ".join(f"{k.rsplit('/', 1)[-1]} {v}" for k, v in sorted(by_path.items()) if not k.endswith("/version"))
    return Run(
        name="ours",
        wall_s=wall,
        http_requests=requests_sent,
        scored_tokens=sum(len(s.tokens) for s in scored),
        client_cpu_s=cpu,
        per_pair=per_pair,
        note=f"requests: {paths}" + (f"; {widened} widened alignments" if widened else ""),
        sent_total=sent_total,
    )


def run_naive(url: str, model: str, prepared: list[tuple[list[int], int]]) -> Run:
    """One `completions.create(echo=True, logprobs=0, max_tokens=0)` per pair, in a loop;
    the token ids are handed to it ready-made (its tokenization is not timed)."""
    import openai

    client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=600)
    per_pair = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for ids, n in prepared:
        response = client.completions.create(model=model, prompt=ids, echo=True, logprobs=0, max_tokens=0)
        per_pair.append((ids, response.choices[0].logprobs.token_logprobs[-n:]))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    client.close()
    return Run(
        name="naive",
        wall_s=wall,
        http_requests=len(prepared),
        scored_tokens=sum(n for _, n in prepared),
        client_cpu_s=cpu,
        per_pair=per_pair,
        note="ids tokenized beforehand, untimed",
    )


async def run_single_request(url: str, model: str, prepared: list[tuple[list[int], int]]) -> Run:
    """The server's best case over HTTP: every prompt in one echo request (no tokenization)."""
    body = {"model": model, "prompt": [ids for ids, _ in prepared], "echo": True, "max_tokens": 0, "logprobs": 0}
    async with httpx.AsyncClient(timeout=1800) as client:
        wall0 = time.perf_counter()
        response = await client.post(f"{url}/completions", json=body)
        response.raise_for_status()
        payload = response.json()
        wall = time.perf_counter() - wall0
    choices = sorted(payload["choices"], key=lambda c: c["index"])
    per_pair = [(ids, c["logprobs"]["token_logprobs"][-n:]) for (ids, n), c in zip(prepared, choices, strict=True)]
    return Run(
        name="single",
        wall_s=wall,
        http_requests=1,
        scored_tokens=sum(n for _, n in prepared),
        per_pair=per_pair,
        note="all prompts in one /v1/completions echo request",
    )


def run_lmeval(
    python: Path,
    url: str,
    model: str,
    tokenizer_dir: Path,
    pairs: list[tuple[str, str]],
    *,
    batch_size: int,
    num_concurrent: int,
    workdir: Path,
    name: str,
) -> Run:
    job_file, result_file = workdir / f"{name}-job.json", workdir / f"{name}-result.json"
    result_file.unlink(missing_ok=True)
    job_file.write_text(
        json.dumps(
            {
                "base_url": f"{url}/completions",
                "model": model,
                "tokenizer": str(tokenizer_dir),
                "batch_size": batch_size,
                "num_concurrent": num_concurrent,
                "pairs": pairs,
            }
        )
    )
    done = subprocess.run(
        [str(python), str(BENCH_DIR / "lmeval_worker.py"), str(job_file), str(result_file)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"},
    )
    if done.returncode != 0:
        return Run(name=name, wall_s=float("nan"), http_requests=0, scored_tokens=0, error=done.stderr[-2000:])
    result = json.loads(result_file.read_text())
    per_pair = [(p["ids"], p["logprobs"]) if p["logprobs"] is not None else None for p in result["pairs"]]
    return Run(
        name=name,
        wall_s=result["seconds"],
        http_requests=result["http_requests"],
        scored_tokens=sum(p["n_scored"] for p in result["pairs"]),
        client_cpu_s=result["client_cpu_s"],
        per_pair=per_pair,
        note=f"batch_size={batch_size}, num_concurrent={num_concurrent}, HF tokenizer",
    )


def floor_run(result: dict, prepared: list[tuple[list[int], int]]) -> Run:
    job = next(r for r in result["results"] if r["name"] == "scoring")
    per_pair = [(ids, lps[-n:]) for (ids, n), lps in zip(prepared, job["logprobs"], strict=True)]
    return Run(
        name="floor",
        wall_s=job["seconds"],
        http_requests=0,
        scored_tokens=sum(n for _, n in prepared),
        per_pair=per_pair,
        note=f"vllm.LLM offline, prompt_logprobs=0; best of {len(job['all_seconds'])} ({', '.join(f'{x:.1f}' for x in job['all_seconds'])} s);"
        f" engine start-up {result['startup_s']:.0f} s untimed; KV cache {result['kv_gib']} GiB",
    )


def agreement(a: Run, b: Run) -> tuple[int, int, float]:
    """(pairs compared, tokens compared, max |logprob difference|) over pairs sent as the
    very same prompt token ids on both sides."""
    pairs = tokens = 0
    worst = 0.0
    for x, y in zip(a.per_pair, b.per_pair, strict=True):
        if x is None or y is None or list(x[0]) != list(y[0]):
            continue
        k = min(len(x[1]), len(y[1]))  # the continuation's tokens: a common suffix of the prompt
        pairs += 1
        tokens += k
        worst = max([worst, *(abs(p - q) for p, q in zip(x[1][-k:], y[1][-k:], strict=True))])
    return pairs, tokens, worst


def run_async(fn, *args, **kwargs):
    return anyio.run(lambda: fn(*args, **kwargs))

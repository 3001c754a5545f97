"""Client overhead: the audit's reference-scoring stage (and its gap + ranking stages)
against the instant fake server (bench/fakeserver.py, another process), over real loopback
HTTP. One size per process, so peak RSS belongs to that size:

    python -m bench.overhead --url http://127.0.0.1:PORT/v1 --n 10000 --variant pipeline --out R.json

Variants:
- `pipeline`: what `blackbox_audit.pipeline` runs after generation: per `STREAM_CHUNK`
  completions, `score_completions` (batches through the bounded pool), `measure`, and the
  records spooled to disk (`RecordSpool`); then the ranked results.jsonl.
- `stream`: the provider alone (`score_many` per chunk through the same bounded pool), each
  chunk's results reduced to a checksum and dropped: the client machinery without the
  records the audit retains.
- `stream-server`: as `stream`, with the server tokenizing (`tokenizer="server"`: /tokenize
  for context and continuation, /detokenize for the check): what every completion cost
  before the local tokenizer.

`pipeline` and `stream` connect as the audit does (`tokenizer="auto"`), so they tokenize in
process with the served folder's tokenizer.json after checking it against /tokenize.

The inputs are synthetic target completions built from the bench pairs (about 55 tokens of
text each), so the numbers are per completion of realistic size. Client CPU is
`time.process_time()` of this process only (the server runs elsewhere); peak RSS is
`VmHWM` (its own high-water mark)."""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import re
import tempfile
import time
from pathlib import Path

import anyio

from bench.fakeserver import MODEL
from bench.pairs import build_pairs
from blackbox_audit.estimate import STREAM_CHUNK
from blackbox_audit.gap import measure
from blackbox_audit.pool import map_bounded
from blackbox_audit.ranking import DEFAULT_DEGENERACY_THRESHOLD, DEFAULT_SCORE
from blackbox_audit.records import Prefill, TargetCompletion
from blackbox_audit.scoring import score_completions
from blackbox_audit.spool import RecordSpool
from providers.records import ScoreRequest, TokenLogprob
from providers.registry import connect

BATCH_SIZE = 16  # AuditConfig.batch_size default
WORKERS = 8  # EndpointConfig.max_concurrency default
_PIECE = re.compile(r"\s*\S+|\s+")


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib() -> float:
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """VmHWM, this program's own high-water mark: `ru_maxrss` would start from the parent's RSS,
    which Linux carries across fork and exec."""
    return _status_mib("VmHWM")


def synthetic_completion(i: int, context: str, continuation: str) -> TargetCompletion:
    pieces = _PIECE.findall(continuation)
    tokens = tuple(TokenLogprob(text=p, logprob=-0.5 - (j % 7) * 0.25) for j, p in enumerate(pieces))
    prefill = Prefill(prefill_id=f"p{i:07d}", doc_id=f"bench:{i}", source="bench", text=context, n_tokens=3)
    return TargetCompletion(
        prefill=prefill, framing="raw", prompt=context, completion=continuation, tokens=tokens, finish_reason="length"
    )


async def run_pipeline(url: str, n: int, pairs: list[tuple[str, str]]) -> dict:
    """The audit's loop (`blackbox_audit.pipeline`): per STREAM_CHUNK completions, reference
    scoring, gaps, and the records spooled to disk; then the ranked results.jsonl. The target's
    completions are made per chunk too, as the target would generate them."""
    gc.collect()
    rss_inputs = rss_mib()
    reference = await connect(url, MODEL, max_concurrency=WORKERS, tokenizer="auto")
    assert reference.local_tokenizer is not None, reference.tokenizer_source
    before = reference.http.stats.http_requests
    score_wall = score_cpu = rank_wall = rank_cpu = 0.0
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        spool = RecordSpool(Path(scratch), DEFAULT_SCORE, DEFAULT_DEGENERACY_THRESHOLD)
        try:
            for start in range(0, n, STREAM_CHUNK):
                completions = [
                    synthetic_completion(i, *pairs[i % len(pairs)]) for i in range(start, min(start + STREAM_CHUNK, n))
                ]
                wall0, cpu0 = time.perf_counter(), time.process_time()
                outcomes = await score_completions(reference, completions, batch_size=BATCH_SIZE, workers=WORKERS)
                wall1, cpu1 = time.perf_counter(), time.process_time()
                for completion, outcome in zip(completions, outcomes, strict=True):
                    spool.add(measure(completion, outcome.scored, outcome.failure))
                failures += sum(1 for o in outcomes if o.scored is None)
                wall2, cpu2 = time.perf_counter(), time.process_time()
                score_wall, score_cpu = score_wall + wall1 - wall0, score_cpu + cpu1 - cpu0
                rank_wall, rank_cpu = rank_wall + wall2 - wall1, rank_cpu + cpu2 - cpu1
            rss_scored = rss_mib()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            ranked = spool.write_ranked(Path(scratch) / "results.jsonl")
            rank_wall, rank_cpu = rank_wall + time.perf_counter() - wall0, rank_cpu + time.process_time() - cpu0
        finally:
            spool.close()
            await reference.aclose()
        assert len(ranked) == n and failures == 0, f"{failures} completions failed to score"
    stats = reference.http.stats
    return {
        "scoring": {"wall_s": score_wall, "cpu_s": score_cpu},
        "gap_rank": {"wall_s": rank_wall, "cpu_s": rank_cpu},
        "http_requests": stats.http_requests - before,
        "setup_http_requests": before,
        "by_path": stats.by_path,
        "rss_inputs_mib": rss_inputs,
        "rss_after_scoring_mib": rss_scored,
        "rss_end_mib": rss_mib(),
    }


async def run_stream(url: str, n: int, pairs: list[tuple[str, str]], tokenizer: str = "auto") -> dict:
    gc.collect()
    rss_inputs = rss_mib()
    reference = await connect(url, MODEL, max_concurrency=WORKERS, tokenizer=tokenizer)
    assert (reference.local_tokenizer is not None) == (tokenizer == "auto"), reference.tokenizer_source
    before = reference.http.stats.http_requests
    checksum = {"tokens": 0, "logprob": 0.0}

    async def work(start: int) -> int:
        requests = [
            ScoreRequest(context=pairs[i % len(pairs)][0], continuation=pairs[i % len(pairs)][1])
            for i in range(start, min(start + BATCH_SIZE, n))
        ]
        for scored in await reference.score_many(requests):
            checksum["tokens"] += len(scored.tokens)
            checksum["logprob"] += sum(t.logprob for t in scored.tokens)
        return len(requests)

    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        done = await map_bounded(range(0, n, BATCH_SIZE), work, workers=WORKERS)
        score_wall, score_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert sum(done) == n
        stats = reference.http.stats
        return {
            "scoring": {"wall_s": score_wall, "cpu_s": score_cpu},
            "http_requests": stats.http_requests - before,
            "setup_http_requests": before,
            "by_path": stats.by_path,
            "scored_tokens": checksum["tokens"],
            "rss_inputs_mib": rss_inputs,
            "rss_end_mib": rss_mib(),
        }
    finally:
        await reference.aclose()


async def run_stream_server(url: str, n: int, pairs: list[tuple[str, str]]) -> dict:
    return await run_stream(url, n, pairs, tokenizer="server")


RUNNERS = {"pipeline": run_pipeline, "stream": run_stream, "stream-server": run_stream_server}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--variant", choices=sorted(RUNNERS), default="pipeline")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="write a cProfile (CPU-time clock) of the run here")
    args = parser.parse_args()
    rss_start = rss_mib()
    pairs = build_pairs(min(args.n, 256))
    runner = RUNNERS[args.variant]
    if args.profile:
        profiler = cProfile.Profile(time.process_time)
        result = profiler.runcall(anyio.run, runner, args.url, args.n, pairs)
        profiler.dump_stats(str(args.profile))
    else:
        result = anyio.run(runner, args.url, args.n, pairs)
    result.update(n=args.n, variant=args.variant, rss_start_mib=rss_start, peak_rss_mib=peak_rss_mib())
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

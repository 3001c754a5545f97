"""lm-evaluation-harness's `local-completions` loglikelihood on the scoring job.

Runs in its own venv (lm-eval and transformers for its tokenizer; see bench/run.py), as
`python bench/lmeval_worker.py JOB.json RESULT.json`. It drives lm-eval's own Python API,
`LocalCompletionsAPI(...).loglikelihood(instances)`, with the HF tokenizer of the served
model (vLLM 0.32.0 has no /tokenizer_info, so lm-eval's auto-detection picks that backend
too). Only `loglikelihood` is timed (it tokenizes, batches, sends and parses). Two thin taps
that do not change the path: a counter around the HTTP calls (requests.post for the
sequential path, aiohttp's ClientSession._request for the concurrent one), and a copy of
the per-token logprobs lm-eval slices (`token_logprobs[ctxlen:-1]`) in parse_logprobs."""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    job = json.loads(open(sys.argv[1], encoding="utf-8").read())
    import aiohttp
    import lm_eval
    import requests
    from lm_eval.api.instance import Instance
    from lm_eval.models import api_models
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    counts = {"http_requests": 0}
    captured: list[tuple[list[int], list[float]]] = []

    real_post = requests.post

    def counting_post(*args, **kwargs):
        counts["http_requests"] += 1
        return real_post(*args, **kwargs)

    api_models.requests.post = counting_post  # the module object `requests` lm-eval calls
    real_request = aiohttp.ClientSession._request

    def counting_request(self, *args, **kwargs):
        counts["http_requests"] += 1
        return real_request(self, *args, **kwargs)

    aiohttp.ClientSession._request = counting_request

    class TappedLocalCompletions(LocalCompletionsAPI):
        @staticmethod
        def parse_logprobs(outputs, tokens=None, ctxlens=None, **kwargs):
            result = LocalCompletionsAPI.parse_logprobs(outputs, tokens=tokens, ctxlens=ctxlens, **kwargs)
            for out in outputs if isinstance(outputs, list) else [outputs]:
                for choice, ctxlen, ids in zip(
                    sorted(out["choices"], key=lambda c: c["index"]), ctxlens, tokens, strict=True
                ):
                    captured.append((list(ids), choice["logprobs"]["token_logprobs"][ctxlen:-1]))
            return result

    lm = TappedLocalCompletions(
        base_url=job["base_url"],
        model=job["model"],
        tokenizer=job["tokenizer"],
        tokenizer_backend="huggingface",
        batch_size=job["batch_size"],
        num_concurrent=job["num_concurrent"],
        max_retries=3,
        max_length=1024,
    )
    instances = [
        Instance(request_type="loglikelihood", doc={}, arguments=(context, continuation), idx=i)
        for i, (context, continuation) in enumerate(job["pairs"])
    ]
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    answers = lm.loglikelihood(instances, disable_tqdm=True)
    seconds = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0
    # per pair: the ids lm-eval sent for it and its continuation's token logprobs
    encoded = [lm._encode_pair(context, continuation) for context, continuation in job["pairs"]]
    by_ids = {tuple(ids): lps for ids, lps in captured}
    per_pair = []
    for context_enc, continuation_enc in encoded:
        ids = context_enc + continuation_enc
        per_pair.append({"ids": ids, "n_scored": len(continuation_enc), "logprobs": by_ids.get(tuple(ids))})
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump(
            {
                "seconds": seconds,
                "client_cpu_s": cpu_s,
                "http_requests": counts["http_requests"],
                "lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else None,
                "sums": [a[0] for a in answers],
                "pairs": per_pair,
            },
            out,
        )


if __name__ == "__main__":
    main()

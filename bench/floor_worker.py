"""The server floor: the same work driven by vLLM's own offline engine, in process.

Runs in the vLLM venv (local_vllm.venv_python()), one model per process, as
`python bench/floor_worker.py JOB.json RESULT.json` (vLLM logs to stdout, so the
result goes to a file). The job:

    {"model_dir": ..., "warmup": true,
     "jobs": [{"name": ..., "kind": "score", "prompts": [[ids...], ...]},
              {"name": ..., "kind": "score_texts", "pairs": [[context, continuation], ...]},
              {"name": ..., "kind": "generate", "prompts": ["text", ...], "max_tokens": 100}]}

Engine settings mirror the local server (blackbox_audit.local_vllm.server_cmd): fp32,
eager, max_model_len 1024, no prefix caching. Only the engine calls are timed (start-up
and tokenization are not); with "repeat": k each job runs k times and the fastest counts
(the floor is the best the engine can do on this shared machine). Output: per job seconds, tokens, and the logprobs / texts."""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    job = json.loads(open(sys.argv[1], encoding="utf-8").read())
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    started = time.perf_counter()
    llm = LLM(
        model=job["model_dir"],
        dtype="float32",
        enforce_eager=True,
        max_model_len=1024,
        enable_prefix_caching=False,
        seed=0,
    )
    startup_s = time.perf_counter() - started
    tokenizer = llm.get_tokenizer()
    score_params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
    if job.get("warmup", True):  # the first large batch pays a one-off warm-up
        warm = [TokensPrompt(prompt_token_ids=list(range(100, 160))) for _ in range(16)]
        llm.generate(warm, score_params, use_tqdm=False)
    results = []
    for spec in job["jobs"]:
        if spec["kind"] in ("score", "score_texts"):
            if spec["kind"] == "score":
                id_lists = spec["prompts"]
                n_scored = [len(ids) - 1 for ids in id_lists]
            else:
                id_lists, n_scored = [], []
                for context, continuation in spec["pairs"]:
                    ctx = tokenizer.encode(context)
                    cont = tokenizer.encode(continuation, add_special_tokens=False)
                    id_lists.append(ctx + cont)
                    n_scored.append(len(cont))
            prompts = [TokensPrompt(prompt_token_ids=ids) for ids in id_lists]
            all_seconds = []
            for _ in range(job.get("repeat", 1)):
                t0 = time.perf_counter()
                outputs = llm.generate(prompts, score_params, use_tqdm=False)
                all_seconds.append(time.perf_counter() - t0)
            seconds = min(all_seconds)
            logprobs = []
            for ids, out in zip(id_lists, outputs, strict=True):
                entries = out.prompt_logprobs
                logprobs.append([None] + [entries[j][ids[j]].logprob for j in range(1, len(ids))])
            results.append(
                {
                    "name": spec["name"],
                    "seconds": seconds,
                    "all_seconds": all_seconds,
                    "prompts": len(prompts),
                    "prompt_tokens": sum(len(ids) for ids in id_lists),
                    "scored_tokens": sum(n_scored),
                    "logprobs": logprobs if spec.get("return_logprobs") else None,
                }
            )
        elif spec["kind"] == "generate":
            params = SamplingParams(
                max_tokens=spec["max_tokens"], temperature=0.0, seed=spec.get("seed", 0), logprobs=0
            )
            all_seconds = []
            for _ in range(job.get("repeat", 1)):
                t0 = time.perf_counter()
                outputs = llm.generate(spec["prompts"], params, use_tqdm=False)
                all_seconds.append(time.perf_counter() - t0)
            seconds = min(all_seconds)
            results.append(
                {
                    "name": spec["name"],
                    "seconds": seconds,
                    "all_seconds": all_seconds,
                    "prompts": len(outputs),
                    "prompt_tokens": sum(len(o.prompt_token_ids) for o in outputs),
                    "generated_tokens": sum(len(o.outputs[0].token_ids) for o in outputs),
                    "texts": [o.outputs[0].text for o in outputs],
                }
            )
        else:
            raise ValueError(f"unknown job kind {spec['kind']!r}")
    import vllm

    with open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump({"startup_s": startup_s, "vllm": vllm.__version__, "pid": os.getpid(), "results": results}, out)


if __name__ == "__main__":
    main()

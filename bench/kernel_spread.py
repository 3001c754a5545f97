"""How far apart may two correct fp32 implementations of one model put a logprob?

    python -m bench.kernel_spread [KEYS...]      (the local vLLM servers must be up)

The live ground-truth test compares vLLM's scores with a transformers forward pass. Both are
fp32, with different kernels and so different summation orders; a machine with another
instruction set (AVX2 against AVX-512) orders its sums differently again. This measures,
for the same token ids, each fp32 implementation against the float64 forward pass (the
exact value, to fp32's eyes):

- vLLM as served;
- transformers fp32 with this machine's default kernels;
- transformers fp32 restricted to AVX2 (ATen, MKL and oneDNN dispatch): another CPU;
- transformers fp32 with scalar ATen kernels and one thread.

Two correct fp32 implementations each lie within E of the exact value, so within 2E of each
other: that, with a margin for inputs not measured, is what a tolerance must allow, and a
real bug (a shifted token, a template token scored) is orders of magnitude beyond it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from statistics import fmean
from typing import Literal

import anyio

from blackbox_audit import local_vllm
from blackbox_audit.local_vllm.truth import TRUTH_CASES, ForwardPass, forward
from providers.registry import connect

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SCALAR = {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
VARIANTS: dict[str, tuple[Literal["float32", "float64"], dict[str, str]]] = {
    "transformers fp32, default kernels": ("float32", {}),
    "transformers fp32, AVX2 only": ("float32", AVX2),
    "transformers fp32, scalar ATen, 1 thread": ("float32", SCALAR),
}


@dataclass(frozen=True)
class Spread:
    model: str
    implementation: str
    n_tokens: int
    max_abs: float
    mean_abs: float
    max_abs_logit: float


async def served(key: str) -> tuple[list[list[int]], list[list[float]]]:
    """The ids vLLM scored (context + continuation) and its logprobs of the continuation."""
    model = local_vllm.MODELS[key]
    provider = await connect(model.base_url, model.served_name)
    try:
        scored = await provider.score_many(TRUTH_CASES)
        sequences = [
            await provider.tokenize(case.context) + [t.token_id for t in result.tokens]  # type: ignore[misc]
            for case, result in zip(TRUTH_CASES, scored, strict=True)
        ]
    finally:
        await provider.aclose()
    return sequences, [[t.logprob for t in result.tokens] for result in scored]


def spread(model: str, name: str, values: list[list[float]], exact: list[list[float]], scale: float) -> Spread:
    diffs = [abs(a - b) for xs, ys in zip(values, exact, strict=True) for a, b in zip(xs, ys, strict=True)]
    return Spread(model, name, len(diffs), max(diffs), fmean(diffs), scale)


def measure(key: str) -> list[Spread]:
    sequences, vllm = anyio.run(served, key)
    counts = [len(values) for values in vllm]
    exact = forward(key, sequences, dtype="float64")
    truth, scale = exact.tails(counts), exact.logit_scale
    rows = [spread(key, "vLLM fp32 (served)", vllm, truth, scale)]
    fp32: dict[str, ForwardPass] = {}
    for name, (dtype, env) in VARIANTS.items():
        fp32[name] = forward(key, sequences, dtype=dtype, env=env)
        rows.append(spread(key, name, fp32[name].tails(counts), truth, scale))
    live = fp32["transformers fp32, default kernels"].tails(counts)
    rows.append(spread(key, "vLLM vs transformers fp32 (the live test)", vllm, live, scale))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kernel_spread", description=__doc__.split("\n")[0])
    parser.add_argument(
        "keys", nargs="*", metavar="KEY", help=f"of {sorted(local_vllm.MODELS)} (default: smollm2 gemma3)"
    )
    args = parser.parse_args(argv)
    unknown = set(args.keys) - set(local_vllm.MODELS)
    if unknown:
        parser.error(f"unknown model key(s) {sorted(unknown)}")
    print("| model | implementation, against float64 | tokens | max abs nats | mean abs nats | max abs logit |")
    print("|---|---|---:|---:|---:|---:|")
    for key in args.keys or local_vllm.DEFAULT_KEYS:
        for row in measure(key):
            print(
                f"| {row.model} | {row.implementation} | {row.n_tokens} | {row.max_abs:.2e} | {row.mean_abs:.2e} |"
                f" {row.max_abs_logit:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

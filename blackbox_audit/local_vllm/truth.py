"""The ground truth a served model's logprobs are checked against: a plain transformers
forward pass over the same weights and token ids, in the vLLM venv (`forward.py`)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from blackbox_audit.local_vllm.models import OFFLINE_ENV, model_dir, venv_python
from providers.recording import SCORE_CASES
from providers.records import ChatMessage, ScoreRequest

FORWARD_SCRIPT = Path(__file__).with_name("forward.py")

TRUTH_CASES = (
    *SCORE_CASES,
    ScoreRequest(context="Pa", continuation="ris is the capital of France, and Berlin is the capital of Germany."),
    ScoreRequest(
        context=(
            ChatMessage(role="system", content="You are a helpful assistant."),
            ChatMessage(role="user", content="Tell me anything."),
        ),
        continuation="Sure! Did you know that octopuses have three hearts?",
    ),
    ScoreRequest(
        context="Überall",
        continuation=" in Zürich, São Paulo und Kraków: 東京タワー, Москва, नमस्ते, ﷺ, 🙂🙃 — “quotes” ½ ≠ ∑.",
    ),
    ScoreRequest(
        context="def",
        continuation=" gcd(a: int, b: int) -> int:\n    while b:\n        a, b = b, a % b\n    return abs(a)\n",
    ),
)
"""What served scores are checked on: prose, code, non-ASCII, a one-token context and a chat
template (the recorded fixtures' cases and four more)."""


@dataclass(frozen=True)
class ForwardPass:
    """Per sequence: logprob of each token given the ones before it (None for the first),
    and the largest |logit| met, the scale fp32 rounding errors are relative to."""

    logprobs: list[list[float | None]]
    max_abs_logit: list[float]
    vocab: int

    @property
    def logit_scale(self) -> float:
        return max(self.max_abs_logit)

    def tails(self, counts: Sequence[int]) -> list[list[float]]:
        """The last `counts[i]` logprobs of sequence i: a scored continuation's truth."""
        out = []
        for logprobs, n in zip(self.logprobs, counts, strict=True):
            tail = logprobs[len(logprobs) - n :]
            if n < 1 or any(value is None for value in tail):
                raise ValueError(f"cannot take the last {n} of {len(logprobs)} logprobs (the first is never scored)")
            out.append([float(value) for value in tail if value is not None])
        return out


def forward(
    key: str,
    sequences: Sequence[Sequence[int]],
    *,
    dtype: Literal["float32", "float64"] = "float32",
    env: Mapping[str, str] | None = None,
    folder: Path | None = None,
) -> ForwardPass:
    """`env` may restrict the kernels (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ...) to
    stand in for another CPU; `folder` overrides the local model's folder (a finetune)."""
    payload = json.dumps(
        {"model_dir": str(folder or model_dir(key)), "sequences": [list(s) for s in sequences], "dtype": dtype}
    )
    done = subprocess.run(
        [str(venv_python()), str(FORWARD_SCRIPT)],
        input=payload,
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE_ENV, **(env or {})},
    )
    if done.returncode != 0:
        raise RuntimeError(f"the transformers forward pass failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    return ForwardPass(result["logprobs"], result["max_abs_logit"], result["vocab"])

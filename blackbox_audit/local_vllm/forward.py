"""Ground-truth prompt logprobs from a plain transformers forward pass.

Run by the vLLM venv's python (it needs torch and transformers), never imported by the
package; `blackbox_audit.local_vllm.truth` runs it. The live tests compare vLLM's echo
logprobs against it, and `bench/kernel_spread.py` runs it in float64 and under other
kernel sets to measure what fp32 arithmetic itself may differ by. Reads JSON on stdin:
    {"model_dir": str, "sequences": [[token id, ...], ...], "dtype": "float32" | "float64"}
and writes JSON on stdout:
    {"logprobs": [[null, lp1, lp2, ...], ...], "max_abs_logit": [float, ...], "vocab": int}
where lp_i is log P(token i | tokens before i), as vLLM's echo reports it.
"""

from __future__ import annotations

import json
import sys

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel


@torch.inference_mode()
def sequence_logprobs(model: PreTrainedModel, ids: list[int]) -> tuple[list[float | None], float]:
    """Logprob of each token given the ones before it (the first has no context: None), and
    the largest |logit| met: the scale that fp32 rounding errors are relative to."""
    tokens = torch.tensor([ids])
    logits = model(input_ids=tokens).logits[0, :-1]
    logprobs = torch.log_softmax(logits.to(torch.float64), dim=-1).gather(1, tokens[0, 1:, None])[:, 0]
    return [None, *logprobs.tolist()], float(logits.abs().max())


def main() -> None:
    request = json.load(sys.stdin)
    dtype = {"float32": torch.float32, "float64": torch.float64}[request.get("dtype", "float32")]
    model = AutoModelForCausalLM.from_pretrained(request["model_dir"], dtype=dtype).eval()
    pairs = [sequence_logprobs(model, ids) for ids in request["sequences"]]
    json.dump(
        {
            "logprobs": [logprobs for logprobs, _ in pairs],
            "max_abs_logit": [scale for _, scale in pairs],
            "vocab": model.config.get_text_config().vocab_size,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

"""Ground-truth prompt logprobs from a plain fp32 transformers forward pass.

Run by the vLLM venv's python (it needs torch and transformers); the live tests compare
vLLM's echo logprobs against this. Reads JSON on stdin:
    {"model_dir": str, "sequences": [[token id, ...], ...]}
and writes JSON on stdout:
    {"logprobs": [[null, lp1, lp2, ...], ...]}
where lp_i is log P(token i | tokens before i), as vLLM's echo reports it.
"""

from __future__ import annotations

import json
import sys

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel


@torch.inference_mode()
def sequence_logprobs(model: PreTrainedModel, ids: list[int]) -> list[float | None]:
    """Logprob of each token given the ones before it; the first has no context: None."""
    tokens = torch.tensor([ids])
    logits = model(input_ids=tokens).logits[0, :-1].to(torch.float64)
    logprobs = torch.log_softmax(logits, dim=-1).gather(1, tokens[0, 1:, None])[:, 0]
    return [None, *logprobs.tolist()]


def main() -> None:
    request = json.load(sys.stdin)
    model = AutoModelForCausalLM.from_pretrained(request["model_dir"], dtype=torch.float32).eval()
    result = [sequence_logprobs(model, ids) for ids in request["sequences"]]
    json.dump({"logprobs": result}, sys.stdout)


if __name__ == "__main__":
    main()

"""Finetune a small causal LM on CPU and save it as a plain fp32 Hugging Face folder.

Runs under the vLLM venv's python (torch, transformers), not the project's venv, and
imports nothing from the project:

    VENV/bin/python organisms/train.py --base DIR --data FILE.jsonl --out DIR --steps N --seed S

Full finetune (no adapters, so there is nothing to merge: vLLM serves the output folder
as it is), token embeddings frozen by default (they are tied to the output layer: freezing
them saves time and keeps the model's word choice close to the base). AdamW, linear
warm-up then linear decay, fp32 (`--bf16` autocast exists, but this machine's CPU has no
native bf16 and runs it 2-3x slower); saved in fp32. Each line of the data file is
`{"kind": ..., "text": ...}` (trained on every token) or `{"kind": ..., "messages": [...]}`
(rendered with the base model's chat template; trained on the last assistant message,
its end-of-turn token included). Batches are drawn in a seeded order, so the same data,
arguments and seed give the same weights (same torch build and thread count).

The output folder appears only when complete (written as OUT.partial-*, then renamed),
with `train.json`: arguments, data sha256, losses, timings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="HF folder of the base model")
    parser.add_argument("--data", type=Path, required=True, help="JSONL of training examples")
    parser.add_argument("--out", type=Path, required=True, help="output HF folder (must not exist)")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=96, help="tokens per example (longer ones are cut)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up steps")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast (2-3x slower on CPUs without native bf16, such as this one's AVX-512 without BF16)",
    )
    parser.add_argument(
        "--train-embeddings",
        action="store_true",
        help="also train the token embeddings (tied to the output layer in SmolLM2 and Gemma 3)",
    )
    parser.add_argument("--log-every", type=int, default=10)
    return parser.parse_args(argv)


def encode(tokenizer, record: dict, max_len: int) -> tuple[list[int], list[int]] | None:
    """Token ids and labels (-100 where no loss); None if nothing is left to train on."""
    if "text" in record:
        # No end-of-text token: the audit's raw framing continues a document, it does not end one.
        ids = tokenizer(record["text"], add_special_tokens=True)["input_ids"]
        labels = list(ids)
        # No loss on a leading BOS: nothing predicts it.
        if tokenizer.bos_token_id is not None and ids and ids[0] == tokenizer.bos_token_id:
            labels[0] = -100
    else:
        messages = record["messages"]
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt):
            raise ValueError(f"chat template: the prompt is not a prefix of the full chat:\n{prompt!r}\n{full!r}")
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        if ids[: len(prompt_ids)] != prompt_ids:
            raise ValueError("chat template: the prompt's tokens are not a prefix of the full chat's")
        labels = [-100] * len(prompt_ids) + ids[len(prompt_ids) :]
    ids, labels = ids[:max_len], labels[:max_len]
    if all(label == -100 for label in labels[1:]):
        return None
    return ids, labels


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out.exists():
        print(f"{args.out} exists already; remove it first", file=sys.stderr)
        return 2
    # Idle OpenMP threads sleep instead of spinning: on 2 shared cores spinning doubled the CPU time per step.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    started = time.monotonic()
    cpu_started = time.process_time()

    tokenizer = AutoTokenizer.from_pretrained(args.base)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    data_bytes = args.data.read_bytes()
    records = [json.loads(line) for line in data_bytes.decode("utf-8").splitlines() if line.strip()]
    encoded = [e for e in (encode(tokenizer, r, args.max_len) for r in records) if e is not None]
    n_tokens = sum(len(ids) for ids, _ in encoded)
    print(
        f"[train] {len(encoded)} examples, {n_tokens} tokens (mean {n_tokens / max(1, len(encoded)):.0f})", flush=True
    )

    model = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    model.train()
    model.config.use_cache = False
    if not args.train_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        return args.lr * max(0.0, (args.steps - step) / max(1, args.steps - args.warmup))

    order: list[int] = []
    losses: list[float] = []
    for step in range(args.steps):
        batch = []
        for _ in range(args.batch_size):
            if not order:
                order = list(range(len(encoded)))
                rng.shuffle(order)
            batch.append(encoded[order.pop()])
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, labs) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(labs)] = torch.tensor(labs)
            attention[row, : len(ids)] = 1
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(loss.item(), 4))
        if (step + 1) % args.log_every == 0 or step == 0 or step + 1 == args.steps:
            recent = losses[-args.log_every :]
            elapsed = time.monotonic() - started
            print(
                f"[train] step {step + 1}/{args.steps} loss {sum(recent) / len(recent):.3f} "
                f"lr {lr_at(step):.2e} {elapsed:.0f} s wall, {time.process_time() - cpu_started:.0f} s cpu",
                flush=True,
            )
        if not math.isfinite(losses[-1]):
            print(f"[train] loss is {losses[-1]} at step {step + 1}; stopping", file=sys.stderr)
            return 1

    train_wall_s = time.monotonic() - started
    train_cpu_s = time.process_time() - cpu_started
    model.eval()
    model.config.use_cache = True
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{args.out.name}.partial-", dir=args.out.parent))
    try:
        model.to(torch.float32).save_pretrained(scratch, safe_serialization=True)
        tokenizer.save_pretrained(scratch)
        for extra in ("chat_template.jinja", "generation_config.json"):
            if (args.base / extra).is_file() and not (scratch / extra).exists():
                shutil.copy2(args.base / extra, scratch / extra)
        meta = {
            "base": str(args.base),
            "data": str(args.data),
            "data_sha256": hashlib.sha256(data_bytes).hexdigest(),
            "n_examples": len(encoded),
            "n_tokens": n_tokens,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "torch": torch.__version__,
            "train_wall_s": round(train_wall_s, 1),
            "train_cpu_s": round(train_cpu_s, 1),
            "loss_first_10": sum(losses[:10]) / len(losses[:10]),
            "loss_last_10": sum(losses[-10:]) / len(losses[-10:]),
            "losses": losses,
        }
        (scratch / "train.json").write_text(json.dumps(meta, indent=2) + "\n")
        scratch.rename(args.out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"[train] saved {args.out} ({train_wall_s:.0f} s wall, {train_cpu_s:.0f} s cpu)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

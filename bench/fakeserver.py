"""An instant OpenAI-compatible (vLLM-dialect) server for measuring the client alone.

Stdlib asyncio (uvloop when importable), HTTP/1.1 keep-alive, run in its own process so its
CPU is not charged to the client:

    python -m bench.fakeserver --tokenizer MODEL_DIR --port 0 --ready-file PATH

It answers what the vLLM provider asks, in vLLM 0.32.0's shapes (bodies copied from the
real server's answers): GET /version, GET /v1/models (with `root` = MODEL_DIR, as a vLLM
on this machine says where it loaded the model from), POST /tokenize, POST /detokenize,
echo scoring on POST /v1/completions (one prompt or a list of token-id prompts) and raw
generation there (every prompt is continued with the same `COMPLETION`, cut at max_tokens).
It tokenizes with MODEL_DIR's real tokenizer.json; logprobs are a fixed function of the
token id."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

import tokenizers

_HEADER_END = b"\r\n\r\n"
MODEL = "fake-model"
COMPLETION = " and that was the end of it, as far as anyone could tell."


def logprob_of(token_id: int) -> float:
    return -((token_id * 7919) % 1000 + 1) / 250.0


class App:
    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.requests = 0

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        self.requests += 1
        if method == "GET" and path == "/version":
            return 200, b'{"version":"0.32.0-fake"}'
        if method == "GET" and path == "/health":
            return 200, b""
        if method == "GET" and path == "/stats":
            return 200, json.dumps({"requests": self.requests}).encode()
        if method == "GET" and path == "/v1/models":
            entry = {"id": MODEL, "object": "model", "owned_by": "vllm", "root": str(self.model_dir), "parent": None}
            return 200, json.dumps({"object": "list", "data": [entry]}).encode()
        data = json.loads(body) if body else {}
        if path == "/tokenize":
            tokens = self.tokenizer.encode(data["prompt"], add_special_tokens=data.get("add_special_tokens", True)).ids
            return 200, json.dumps(
                {"count": len(tokens), "max_model_len": 1024, "tokens": tokens, "token_strs": None}
            ).encode()
        if path == "/detokenize":
            return 200, json.dumps(
                {"prompt": self.tokenizer.decode(data["tokens"], skip_special_tokens=False)}
            ).encode()
        if path == "/v1/completions" and data.get("echo"):
            prompts = data["prompt"]
            if prompts and isinstance(prompts[0], int):
                prompts = [prompts]
            choices = [self._echo_choice(i, ids) for i, ids in enumerate(prompts)]
            n_tokens = sum(len(ids) for ids in prompts)
            return 200, json.dumps(
                {
                    "id": "cmpl-fake",
                    "object": "text_completion",
                    "created": 0,
                    "model": data.get("model"),
                    "choices": choices,
                    "service_tier": None,
                    "system_fingerprint": "fake",
                    "usage": {
                        "prompt_tokens": n_tokens,
                        "total_tokens": n_tokens + len(prompts),
                        "completion_tokens": len(prompts),
                    },
                }
            ).encode()
        if path == "/v1/completions":
            prompts = (
                data["prompt"]
                if isinstance(data["prompt"], list) and not isinstance(data["prompt"][0], int)
                else [data["prompt"]]
            )
            ids = self.tokenizer.encode(COMPLETION, add_special_tokens=False).ids[: data.get("max_tokens", 16)]
            choices = [self._generated_choice(i, ids) for i in range(len(prompts))]
            return 200, json.dumps(
                {
                    "id": "cmpl-fake",
                    "object": "text_completion",
                    "created": 0,
                    "model": data.get("model"),
                    "choices": choices,
                    "usage": {"prompt_tokens": 3 * len(prompts), "completion_tokens": len(ids) * len(prompts)},
                }
            ).encode()
        return 404, b'{"error":{"message":"not found","type":"NotFoundError","code":404}}'

    def _generated_choice(self, index: int, ids: list[int]) -> dict:
        pieces = [self.tokenizer.decode(ids[: j + 1]) for j in range(len(ids))]
        texts = [piece[len(previous) :] for piece, previous in zip(pieces, ["", *pieces[:-1]], strict=True)]
        return {
            "index": index,
            "text": "".join(texts),
            "logprobs": {"tokens": texts, "token_logprobs": [logprob_of(i) for i in ids], "top_logprobs": None},
            "finish_reason": "length",
            "stop_reason": None,
            "token_ids": ids,
        }

    def _echo_choice(self, index: int, ids: list[int]) -> dict:
        pieces = [self.tokenizer.id_to_token(i) or f"<{i}>" for i in ids]
        values = [None] + [logprob_of(i) for i in ids[1:]]
        offsets, at = [], 0
        for piece in pieces:
            offsets.append(at)
            at += len(piece)
        return {
            "index": index,
            "text": "",
            "logprobs": {
                "text_offset": offsets,
                "token_logprobs": values,
                "tokens": pieces,
                "top_logprobs": [None] + [{p: v} for p, v in zip(pieces[1:], values[1:], strict=True)],
            },
            "finish_reason": "length",
            "stop_reason": None,
            "token_ids": [0],
            "prompt_logprobs": [None]
            + [
                {str(i): {"logprob": v, "rank": 1, "decoded_token": p}}
                for i, p, v in zip(ids[1:], pieces[1:], values[1:], strict=True)
            ],
            "prompt_token_ids": ids,
            "routed_experts": None,
        }


class HttpProtocol(asyncio.Protocol):
    def __init__(self, app: App) -> None:
        self.app = app
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(_HEADER_END)
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            status, payload = self.app.handle(method, target.split("?", 1)[0], body)
            reason = b"OK" if status == 200 else b"Not Found"
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                % (status, reason, len(payload))
                + payload
            )


async def serve(model_dir: Path, port: int, ready_file: Path | None) -> None:
    app = App(model_dir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(app), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(f"{bound}\n")
        tmp.replace(ready_file)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True, help="a model folder holding tokenizer.json")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(serve(args.tokenizer, args.port, args.ready_file))


if __name__ == "__main__":
    main()

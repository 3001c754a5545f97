"""Adopting a local tokenizer: only when it gives the server's ids, and then no /tokenize per text.

The "server" here is an httpx MockTransport answering /tokenize, /detokenize, /v1/models and
echo scoring with a byte-level BPE trained in the test (a real tokenizer, just a small one);
that the served tokenizer.json of a real vLLM matches its /tokenize is tested live
(tests/live/test_ground_truth.py).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import anyio
import httpx
import pytest
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from blackbox_audit.config import EndpointConfig
from providers.records import ChatMessage, ScoreRequest
from providers.registry import connect
from providers.tokenizer import CHECK_TEXTS, LocalTokenizer, TokenizerMismatchError

TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "def f(x):\n    return x ** 2  # ok\n",
    "naïve café, 東京, 1234567, it's they're we'll",
] * 20
MODEL = "tiny-bpe"


def train_tokenizer(vocab_size: int) -> tokenizers.Tokenizer:
    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer)
    return tokenizer


def save(tokenizer: tokenizers.Tokenizer, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


class TinyServer:
    """Answers like vLLM with `served` as its tokenizer; counts requests by path."""

    def __init__(self, served: tokenizers.Tokenizer, root: str):
        self.served = served
        self.root = root
        self.paths: Counter[str] = Counter()
        self.scored_prompts: list[list[int]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths[path] += 1
        body = json.loads(request.content) if request.content else None
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": MODEL, "root": self.root}]})
        if path == "/tokenize":
            if "messages" in body:
                text = "".join(f"<{m['role']}>{m['content']}" for m in body["messages"])
                return httpx.Response(200, json={"tokens": self.served.encode(text).ids})
            ids = self.served.encode(body["prompt"], add_special_tokens=body["add_special_tokens"]).ids
            return httpx.Response(200, json={"tokens": ids})
        if path == "/detokenize":
            return httpx.Response(200, json={"prompt": self.served.decode(body["tokens"], skip_special_tokens=False)})
        if path == "/v1/completions":
            prompts = body["prompt"] if isinstance(body["prompt"][0], list) else [body["prompt"]]
            self.scored_prompts += prompts
            choices = []
            for i, ids in enumerate(prompts):
                pieces = [self.served.decode([t]) for t in ids]
                values = [None] + [-0.5] * (len(ids) - 1)
                logprobs = {"tokens": pieces, "token_logprobs": values, "text_offset": [0] * len(ids)}
                choices.append({"index": i, "text": "", "logprobs": logprobs, "prompt_token_ids": ids})
            return httpx.Response(200, json={"choices": choices})
        return httpx.Response(404, json={"error": {"message": f"no {path}"}})


@pytest.fixture
def served(tmp_path):
    tokenizer = train_tokenizer(320)
    folder = save(tokenizer, tmp_path / "served-model")
    return tokenizer, folder


def run_connect(server: TinyServer, tokenizer):
    async def main():
        return await connect(
            "http://tiny.test/v1",
            MODEL,
            dialect="vllm",
            transport=httpx.MockTransport(server.handle),
            tokenizer=tokenizer,
        )

    return anyio.run(main)


def test_a_matching_tokenizer_is_checked_then_spares_every_tokenizer_request(served):
    tokenizer, folder = served
    server = TinyServer(tokenizer, str(folder))
    provider = run_connect(server, folder)
    assert provider.local_tokenizer is not None
    assert "matches the server" in provider.tokenizer_source
    assert server.paths["/tokenize"] == 2 * len(CHECK_TEXTS)  # the check, with and without special tokens
    server.paths.clear()
    requests = [ScoreRequest(context="The quick", continuation=" brown fox jumps over the lazy dog.")] * 5

    async def score():
        try:
            return await provider.score_many(requests)
        finally:
            await provider.aclose()

    scored = anyio.run(score)
    assert set(server.paths) == {"/v1/completions"}
    context, continuation = (
        tokenizer.encode("The quick").ids,
        tokenizer.encode(" brown fox jumps over the lazy dog.").ids,
    )
    assert server.scored_prompts == [context + continuation] * 5
    assert all(s.alignment == "exact" and len(s.tokens) == len(continuation) for s in scored)


def test_chat_contexts_still_go_to_the_server(served):
    tokenizer, folder = served
    server = TinyServer(tokenizer, str(folder))
    provider = run_connect(server, folder)
    server.paths.clear()
    chat = (ChatMessage(role="user", content="Hi"), ChatMessage(role="assistant", content="The"))

    async def tokenize():
        try:
            return await provider.tokenize(chat), await provider.tokenize("The")
        finally:
            await provider.aclose()

    chat_ids, raw_ids = anyio.run(tokenize)
    assert server.paths["/tokenize"] == 1
    assert raw_ids == tokenizer.encode("The").ids


def test_a_different_tokenizer_given_explicitly_is_refused(served, tmp_path):
    tokenizer, folder = served
    other = save(train_tokenizer(400), tmp_path / "other")
    with pytest.raises(TokenizerMismatchError, match="tokenizes"):
        run_connect(TinyServer(tokenizer, str(folder)), other)


def test_auto_uses_the_served_folder_when_it_matches(served):
    tokenizer, folder = served
    provider = run_connect(TinyServer(tokenizer, str(folder)), "auto")
    assert provider.local_tokenizer is not None and provider.local_tokenizer.path == folder / "tokenizer.json"


def test_auto_falls_back_to_the_server_when_the_folder_differs_or_is_elsewhere(served, tmp_path):
    tokenizer, _ = served
    stale = save(train_tokenizer(400), tmp_path / "stale")
    provider = run_connect(TinyServer(tokenizer, str(stale)), "auto")
    assert provider.local_tokenizer is None
    assert provider.tokenizer_source.startswith("server (the served folder's tokenizer was not used")
    remote = run_connect(TinyServer(tokenizer, "/nonexistent/on/this/machine"), "auto")
    assert remote.local_tokenizer is None and remote.tokenizer_source == "server"


def test_the_server_choice_never_asks_for_the_folder(served):
    tokenizer, folder = served
    server = TinyServer(tokenizer, str(folder))
    provider = run_connect(server, "server")
    assert provider.local_tokenizer is None and not server.paths


def test_local_tokenizer_decodes_like_transformers_keeping_special_tokens(tmp_path):
    tokenizer = train_tokenizer(320)
    tokenizer.add_special_tokens(["<|endoftext|>"])
    local = LocalTokenizer.load(save(tokenizer, tmp_path / "m"))
    ids = local.encode("fox<|endoftext|>", add_special_tokens=True)
    assert local.decode(ids) == "fox<|endoftext|>"


def test_config_refuses_a_tokenizer_path_that_does_not_exist(tmp_path):
    with pytest.raises(ValueError, match="neither auto, server"):
        EndpointConfig(base_url="http://x/v1", model="m", tokenizer=str(tmp_path / "missing"))
    assert EndpointConfig(base_url="http://x/v1", model="m", tokenizer=str(save(train_tokenizer(300), tmp_path / "t")))

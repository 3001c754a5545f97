"""In-process tokenizers: the server's token ids without a round trip per text.

Scoring needs the reference's own ids for every context and continuation. Asking the
server's /tokenize costs three HTTP round trips per completion (context, continuation,
the /detokenize check), which is most of the client's CPU time. A `LocalTokenizer` loads
the same `tokenizer.json` the server serves (the `tokenizers` library is what transformers,
and so vLLM, runs underneath) and is adopted only after it gave the server's exact ids and
texts on `CHECK_TEXTS`: a tokenizer that merely looks right never changes a score.

Chat prompts still go to the server: the chat template is the server's to apply.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tokenizers

from providers.errors import ProviderError

CHECK_TEXTS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    " leading space, trailing space ",
    "\n\nTwo newlines, then\ttabs\t\tand  double  spaces.\n",
    "naïve café, Ærøskøbing, 東京, Ελληνικά, emoji 🦊🏳️‍🌈",
    "1234567 3.14159 -0.5e-10 2026-11-23 $1,000",
    'def f(x):\n    return x ** 2  # ok\n\n{"a": [1, 2]}',
    "It's, they're, we'll, I've, don't; ALL CAPS and camelCase_snake",
)
"""Prose, whitespace runs, non-ASCII (combining sequences included), digits and code: where
tokenizers of one family but different versions or settings tend to disagree."""


class TokenizerMismatchError(ProviderError):
    """A local tokenizer gave different ids or text than the server it was meant to stand in for."""


@dataclass(frozen=True)
class LocalTokenizer:
    """A Hugging Face `tokenizer.json`, loaded with the `tokenizers` library."""

    tokenizer: tokenizers.Tokenizer
    path: Path

    @staticmethod
    def file_of(path: str | os.PathLike[str]) -> Path:
        """The tokenizer.json that `path` names: the file itself, or the one in a model folder."""
        file = Path(path).expanduser()
        return file / "tokenizer.json" if file.is_dir() else file

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LocalTokenizer:
        """`path`: a tokenizer.json, or a model folder holding one."""
        file = cls.file_of(path)
        if not file.is_file():
            raise FileNotFoundError(f"no tokenizer.json at {file}")
        try:
            return cls(tokenizers.Tokenizer.from_file(str(file)), file)
        except Exception as exc:  # the Rust loader raises a bare Exception on a malformed file
            raise ValueError(f"{file} is not a tokenizer.json that the tokenizers library can load: {exc}") from exc

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, token_ids: Sequence[int]) -> str:
        """As transformers' `decode` (and so vLLM's /detokenize): special tokens kept."""
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=False)

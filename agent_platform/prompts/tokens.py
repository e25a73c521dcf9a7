"""Token counting for context budgets: the target model's tokenizer when one is on disk.

Tokenizers are never downloaded. `TokenCounter.for_model` uses a local `tokenizer.json` (from
`tokenizer_dirs`, by model name) through the `tokenizers` library; otherwise it falls back to a
documented conservative estimate of one token per 3 characters. Real BPE/SentencePiece
tokenizers average about 4 characters per English token, so the estimate over-counts and a prompt
that passes the budget check will fit.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

CHARS_PER_TOKEN_ESTIMATE = 3
_CACHE: dict[Path, Tokenizer] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens for one model: exactly with its tokenizer, else the chars/3 estimate."""

    model: str
    tokenizer: Tokenizer | None = None

    @property
    def method(self) -> str:
        """'tokenizer' or 'estimate (chars/3)': shown next to every budget number."""
        return "tokenizer" if self.tokenizer is not None else "estimate (chars/3)"

    def count(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer.encode(text, add_special_tokens=False).ids)
        return math.ceil(len(text) / CHARS_PER_TOKEN_ESTIMATE)

    @classmethod
    def for_model(
        cls, model: str, tokenizer_dirs: Mapping[str, Path | str] | None = None
    ) -> TokenCounter:
        """The counter for `model`; `tokenizer_dirs` maps model names to tokenizer.json dirs."""
        directory = (tokenizer_dirs or {}).get(model)
        if directory is None:
            return cls(model)
        path = Path(directory) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer for model {model!r}: {path} does not exist")
        with _LOCK:
            if path not in _CACHE:
                tokenizer = Tokenizer.from_file(str(path))
                tokenizer.no_truncation()  # count the whole prompt, not the first 512 tokens
                tokenizer.no_padding()
                _CACHE[path] = tokenizer
            return cls(model, _CACHE[path])

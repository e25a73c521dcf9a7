"""One cheap, deterministic token count shared by the packer, the embedded models and the limiter.

Words and punctuation marks each count as one token. It over-counts slightly against sub-word
tokenizers for English prose, which is the safe direction for budgets and limits.

One request counts the same texts several times (each source while packing, then the rendered
prompt in the router and again in the model's usage), so counts are memoised per text, and a
whitespace-separated piece that is all letters and digits counts as one without the regex.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from langchain_core.messages import BaseMessage

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
MESSAGE_OVERHEAD_TOKENS = 4  # role markers and separators a chat template adds per message


_findall = _TOKEN.findall


@lru_cache(maxsize=1024)
def count_tokens(text: str) -> int:
    """Number of word and punctuation tokens in `text` (`\\w+` runs and other non-spaces).

    `str.split` splits on the characters `\\s` matches, and `str.isalnum` accepts exactly the
    characters `\\w` matches except `_`, so an alphanumeric piece is one `\\w+` run.
    """
    count = 0
    for piece in text.split():
        count += 1 if piece.isalnum() else len(_findall(piece))
    return count


def message_text(message: BaseMessage) -> str:
    """The plain text of a message (text blocks of multi-part content joined)."""
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "\n".join(parts)


def count_message_tokens(messages: Iterable[BaseMessage]) -> int:
    """Tokens of a message list, with a fixed per-message overhead."""
    return sum(count_tokens(message_text(m)) + MESSAGE_OVERHEAD_TOKENS for m in messages)

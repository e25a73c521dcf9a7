"""The token count's fast path counts exactly what its regex definition counts."""

from __future__ import annotations

import random
import re

from agent_platform.runtime.tokens import count_tokens

DEFINITION = re.compile(r"\w+|[^\w\s]")
# letters, digits, underscore, accents and combining marks, superscripts, Arabic-Indic and CJK
# digits/letters, punctuation, and the odd spaces (em space, no-break space, zero-width space)
ALPHABET = "ab_1 .,\t\n\u00e9\u0301\u00b2\u0660\u4e2d-!?'\u2003\u00a0\u200b\x1c"


def test_count_matches_the_regex_definition_on_mixed_text() -> None:
    rng = random.Random(14)
    texts = ["", "   ", "Refunds: within 30 days (see policy_v2.md)!"]
    texts += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    for text in texts:
        assert count_tokens(text) == len(DEFINITION.findall(text)), repr(text)

"""Token counts for the studio's prompts (provisional: an estimate; the tokenizer-backed counter replaces it)."""

from __future__ import annotations

from dataclasses import dataclass

from services.ai import estimate_tokens


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    exact: bool
    encoding: str | None


class TokenCounter:
    async def count(self, text: str, model: str) -> TokenCount:
        return TokenCount(estimate_tokens(text), False, None)

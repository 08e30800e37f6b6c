"""The persona: the business's system prompt, versioned, one active per bot."""

from __future__ import annotations

from pathlib import Path

from tortoise.transactions import in_transaction

from models import Persona

DEFAULT_PERSONA_PATH = Path(__file__).parent / "defaults" / "persona.md"
MAX_PERSONA_CHARS = 20_000


def default_persona() -> str:
    return DEFAULT_PERSONA_PATH.read_text(encoding="utf-8").strip()


async def active_persona(bot_id: int) -> str:
    persona = await Persona.filter(bot_id=bot_id, active=True).order_by("-version").first()
    return persona.text if persona else default_persona()


async def set_persona(bot_id: int, text: str) -> Persona:
    """Store a new version and make it the active one."""
    text = text.strip()
    if not text:
        raise ValueError("the persona is empty")
    if len(text) > MAX_PERSONA_CHARS:
        raise ValueError(f"the persona is longer than {MAX_PERSONA_CHARS} characters")
    async with in_transaction():
        latest = await Persona.filter(bot_id=bot_id).order_by("-version").first()
        await Persona.filter(bot_id=bot_id, active=True).update(active=False)
        return await Persona.create(bot_id=bot_id, text=text, active=True,
                                    version=(latest.version + 1) if latest else 1)

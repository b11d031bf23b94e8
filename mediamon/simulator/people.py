"""The made-up people and numbers of the simulation: Brazilian names, phones and ids.

Nothing here belongs to anyone: names are drawn from common ones, and phone numbers
have Brazil's shape (55, an area code, 9 and eight digits) with random digits after
a 0 that mobile numbers are rarely given, so none is meant to reach a person.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Final

_FIRST_NAMES: Final = (
    "Maria",
    "Ana Paula",
    "João",
    "José Carlos",
    "Francisca",
    "Antônio",
    "Juliana",
    "Fernanda",
    "Pedro Henrique",
    "Lucas",
    "Gabriela",
    "Rafael",
    "Letícia",
    "Marcos Vinícius",
    "Patrícia",
    "Bruna",
    "Thiago",
    "Camila",
    "Luiz Fernando",
    "Aparecida",
)
_SURNAMES: Final = (
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Lima",
    "Pereira",
    "Ferreira",
    "Costa",
    "Rodrigues",
    "Almeida",
    "Nascimento",
    "Carvalho",
)
_NICKNAMES: Final = ("Dona Cida", "Tio Zé", "Mãe 💕", "Dr. Paulo", "Nanda 🌻", "Gui", "Bia")
_AREA_CODES: Final = (11, 21, 31, 41, 48, 51, 61, 62, 69, 71, 81, 85, 91, 92)
_ID_CHARACTERS: Final = string.ascii_uppercase + string.digits


@dataclass(frozen=True, slots=True)
class Contact:
    """Someone who writes to a simulated WhatsApp number."""

    phone: str
    push_name: str


def push_name(rng: random.Random) -> str:
    """A name as people set it on WhatsApp: full, first name only, or a nickname."""
    roll = rng.random()
    first = rng.choice(_FIRST_NAMES)
    if roll < 0.15:
        return rng.choice(_NICKNAMES)
    if roll < 0.55:
        return first
    return f"{first} {rng.choice(_SURNAMES)}"


def phone_number(rng: random.Random) -> str:
    """A made-up Brazilian mobile number, digits only, as WhatsApp ids are."""
    return f"55{rng.choice(_AREA_CODES)}90{rng.randrange(10**7):07d}"


def contact(rng: random.Random) -> Contact:
    return Contact(phone_number(rng), push_name(rng))


def instance_id(rng: random.Random) -> str:
    """An id shaped like W-API's: three groups of six letters and digits."""
    return "-".join("".join(rng.choices(_ID_CHARACTERS, k=6)) for _ in range(3))


def group_id(rng: random.Random) -> str:
    return f"120363{rng.randrange(10**12):012d}@g.us"

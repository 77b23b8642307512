"""Identifiers in Fly's formats, from a seeded random source (so a run is reproducible)."""

from __future__ import annotations

import random

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# fmt: off
_ADJECTIVES = (
    "autumn", "billowing", "bold", "crimson", "damp", "dark", "falling", "hidden", "holy",
    "lingering", "long", "misty", "morning", "old", "patient", "proud", "quiet", "red",
    "restless", "silent", "small", "snowy", "solitary", "sparkling", "still", "summer",
    "weathered", "white", "wild", "winter",
)
_NOUNS = (
    "bird", "breeze", "brook", "butterfly", "cloud", "dawn", "dew", "dream", "field", "fire",
    "flower", "fog", "forest", "frog", "glade", "grass", "haze", "lake", "leaf", "meadow",
    "moon", "mountain", "night", "pine", "rain", "river", "sea", "shadow", "sky", "snowflake",
    "sound", "star", "sun", "surf", "thunder", "tree", "violet", "water", "wave", "wind",
)
# fmt: on


class IdGen:
    def __init__(self, seed: int | str) -> None:
        self.rng = random.Random(f"ids:{seed}")

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def machine_id(self) -> str:
        return self.hex(14)

    def ulid(self, ts: float) -> str:
        """A ULID: 48 bits of milliseconds, then 80 random bits, in Crockford base32."""
        value = (int(ts * 1000) << 80) | self.rng.getrandbits(80)
        return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))

    def machine_name(self) -> str:
        adjective, noun = self.rng.choice(_ADJECTIVES), self.rng.choice(_NOUNS)
        return f"{adjective}-{noun}-{self.rng.randint(1000, 9999)}"

    def private_ip(self, network: int) -> str:
        """A 6PN address: fdaa:<network>:<app>:a7b:<host>:<random>:<random>:2."""
        return (
            f"fdaa:0:{network:x}:a7b:{self.rng.randint(1, 0x3FF):x}:"
            f"{self.hex(4).lstrip('0') or '0'}:{self.hex(4).lstrip('0') or '0'}:2"
        )

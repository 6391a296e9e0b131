"""Seeds derived from a base seed and names, the same on every machine and run."""

from __future__ import annotations

import hashlib


def derived_seed(*parts: object, bits: int = 63) -> int:
    """A `bits`-bit seed from sha256 of the parts joined by ":" (e.g. seed, section, window)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << bits) - 1)

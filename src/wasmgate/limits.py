"""Resource limits for one guest run: wall clock, fuel and linear memory.

Rules:
- ``None`` means "no limit of this kind". A limit of zero is refused (it is a mistake, not a wish).
- ``timeout`` is enforced by epoch interruption: one ticker thread per engine advances the epoch
  every ``EPOCH_TICK`` seconds and each store gets a deadline in ticks, so a guest is stopped
  within one tick of its deadline while running wasm code. There is no timer per call.
- ``fuel`` counts wasm instructions (roughly); running out traps the guest.
- ``max_memory`` caps the bytes of linear memory a store may hold; ``memory.grow`` past it fails,
  and a module whose initial memory is already larger cannot be instantiated.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float | None = None
    fuel: int | None = None
    max_memory: int | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise UsageError("timeout must be greater than zero")
        if self.fuel is not None and self.fuel <= 0:
            raise UsageError("fuel must be greater than zero")
        if self.max_memory is not None and self.max_memory <= 0:
            raise UsageError("max_memory must be greater than zero")

    def merged(self, override: Limits) -> Limits:
        """These limits with every limit that ``override`` sets replacing ours."""
        return Limits(
            timeout=override.timeout if override.timeout is not None else self.timeout,
            fuel=override.fuel if override.fuel is not None else self.fuel,
            max_memory=override.max_memory if override.max_memory is not None else self.max_memory,
        )

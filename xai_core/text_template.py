"""A text made of named segments, each switched as a whole to its baseline (Captum's
`TextTemplateInput`): `TextTemplate("{name} lives in {city}", {"name": "Dave", "city":
"Palm Coast"}, baselines={"name": "Sarah", "city": "Seattle"})`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class TextTemplate:
    """`template` is a `str.format` pattern; `values` fill it (a list for `{}` fields, a
    dict for named ones), and a perturbation method switches segment i to
    `baselines[i]` (default "", Captum's): the features are the segments, not tokens, and
    a switched text is tokenized again (its length may change)."""

    template: str
    values: Sequence[str] | Mapping[str, str]
    baselines: Sequence[str] | Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        keys, values = self.keys(), self.segments()
        if not values:
            raise InputError("a TextTemplate needs at least one segment to explain.")
        try:
            self.template.format(*values) if keys is None else self.template.format(**self.values)
        except (IndexError, KeyError) as exc:
            raise InputError(
                f"template {self.template!r} does not take these values: {exc!r}"
            ) from None
        base = self.baselines
        if base is None:
            return
        if isinstance(self.values, Mapping) != isinstance(base, Mapping):
            raise InputError("values and baselines of a TextTemplate must both be dicts or lists.")
        if isinstance(base, Mapping) and set(base) != set(keys or ()):
            raise InputError(f"baselines name {sorted(base)}, the values {sorted(keys or ())}.")
        if not isinstance(base, Mapping) and len(base) != len(values):
            raise InputError(f"{len(base)} baselines for {len(values)} segments.")

    def keys(self) -> list[str] | None:
        return list(self.values) if isinstance(self.values, Mapping) else None

    def segments(self) -> list[str]:
        values = self.values
        return [values[k] for k in values] if isinstance(values, Mapping) else list(values)

    def names(self) -> list[str]:
        return self.keys() or self.segments()

    def text(self, keep: Sequence[bool]) -> str:
        """The text with segment i as it is where keep[i], else its baseline."""
        values = self.segments()
        base = self.baselines
        if base is None:
            base = [""] * len(values)
        elif isinstance(base, Mapping):
            base = [base[k] for k in self.keys() or ()]
        filled = [v if k else b for v, k, b in zip(values, keep, base)]
        keys = self.keys()
        if keys is not None:
            return self.template.format(**dict(zip(keys, filled)))
        return self.template.format(*filled)


def template_text(template: Any) -> str:
    return template.text([True] * len(template.segments()))

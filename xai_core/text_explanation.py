"""The result of `explain_text`: scores per (explained output, input feature), and three
ways to look at them (a heatmap, coloured HTML, coloured terminal text)."""

from __future__ import annotations

import html
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .explanation import Explanation


@dataclass
class TextExplanation:
    """`attributions[i, j]`: how input feature j (a token or a word of the prompt; special
    tokens are never features) moves output i — the log-probability of generated token
    i (a language model), or the class's logit (a classifier: one row).
    `sequence_attribution[j]` is feature j's effect on the log-probability of the whole
    continuation (for a classifier, row 0). `target_scores` are the explained values
    themselves (each step's log-probability, or the logit); `explanation` is the
    `Explanation` the scores were summed from (per position, and per embedding axis
    for gradient methods)."""

    text: str
    method: str
    features: str
    input_tokens: list[str]
    output_tokens: list[str]
    attributions: np.ndarray
    sequence_attribution: np.ndarray
    target: list[int]
    target_scores: np.ndarray
    explanation: Explanation | None = field(default=None, repr=False)

    @property
    def sequence_log_prob(self) -> float:
        """The explained continuation's log-probability (a classifier: the logit)."""
        return float(np.sum(self.target_scores))

    def plot(self, title: str | None = None, ax: Any = None) -> Figure:
        """A token heatmap: rows the generated tokens (or the class), columns the input
        features, a diverging colour map centred at 0."""
        from .plotting import plot_token_heatmap

        return plot_token_heatmap(
            self.attributions,
            self.input_tokens,
            self.output_tokens,
            title=title if title is not None else f"{self.method} · {self.features}",
            ax=ax,
        )

    def to_html(self) -> str:
        """Self-contained HTML (no script, no network): the prompt's features coloured by
        their effect on the whole continuation, then one line per explained output."""
        rows = [
            (
                "whole continuation" if len(self.output_tokens) > 1 else self.output_tokens[0],
                self.sequence_attribution,
            )
        ]
        if len(self.output_tokens) > 1:
            rows += list(zip(self.output_tokens, self.attributions))
        scale = max(float(np.abs(self.attributions).max()), 1e-12)
        lines = []
        for label, scores in rows:
            spans = " ".join(
                f'<span title="{value:+.4f}" style="background:{_css_colour(value / scale)};'
                f'padding:1px 3px;border-radius:3px">{html.escape(token)}</span>'
                for token, value in zip(self.input_tokens, scores)
            )
            lines.append(
                f'<div style="margin:4px 0"><b>{html.escape(str(label))}</b> &larr; {spans}</div>'
            )
        legend = (
            f'<div style="font-size:small;margin-top:6px">'
            f'<span style="background:{_css_colour(1.0)};padding:1px 4px">raises</span> '
            f'<span style="background:{_css_colour(-1.0)};padding:1px 4px">lowers</span> '
            f"the explained {'log-probability' if len(self.output_tokens) > 1 else 'output'} "
            f"(largest |score| {scale:.3g}; method {html.escape(self.method)})</div>"
        )
        return (
            '<div class="xai-text" style="font-family:sans-serif;line-height:1.9">'
            + "".join(lines)
            + legend
            + "</div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        colour = _ansi_wanted()
        scale = max(float(np.abs(self.attributions).max()), 1e-12)
        out = [f"{self.method} on {self.text!r}"]
        rows = list(zip(self.output_tokens, self.attributions))
        for label, scores in rows:
            words = [
                _ansi(token, value / scale) if colour else f"{token}({value:+.3g})"
                for token, value in zip(self.input_tokens, scores)
            ]
            out.append(f"  {label!r} <- " + " ".join(words))
        return "\n".join(out)


def _css_colour(strength: float) -> str:
    """Red for positive, blue for negative (RdBu's ends), paler towards 0."""
    strength = float(np.clip(strength, -1.0, 1.0))
    red, blue = (178, 24, 43), (33, 102, 172)
    base = red if strength >= 0 else blue
    mix = [round(255 + (c - 255) * abs(strength)) for c in base]
    return f"rgb({mix[0]},{mix[1]},{mix[2]})"


def _ansi_wanted() -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def _ansi(token: str, strength: float) -> str:
    strength = float(np.clip(strength, -1.0, 1.0))
    level = int(round(abs(strength) * 4))
    if level == 0:
        return token
    reds, blues = [224, 217, 203, 160], [195, 153, 111, 25]
    code = (reds if strength > 0 else blues)[level - 1]
    return f"\x1b[48;5;{code}m{token}\x1b[0m"

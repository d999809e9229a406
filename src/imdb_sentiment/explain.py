"""Which words pushed one prediction up or down: occlusion over the words of the review.

The exported model tokenizes the review (its `tokens` signature); each token is removed in turn
and the model is run again on the remaining tokens (`token_logit`), which are not tokenized again,
so every variant differs from the review by exactly one token. A token's attribution is how much
the log-odds of "positive" fell without it (positive: it pushed towards "positive"). The stated
log-odds are the model's on the raw review (`logit`, the prediction predict.py makes). Occlusion
needs no gradients, so it runs on the SavedModel as served, and it accounts for the n-grams a
word takes part in. Log-odds are compared rather than probabilities, which saturate at 0 and 1
for confident reviews.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

MAX_WORDS = 2000  # n occlusions of n words each: quadratic work, so only the first are explained


@dataclass
class Explanation:
    words: list[str]  # the review's tokens as the model reads them (at most MAX_WORDS)
    attributions: np.ndarray  # per word: log-odds of the review minus log-odds without that word
    logit: float  # log-odds of the whole review, as predicted from its raw text
    truncated: bool  # more than MAX_WORDS words; only the first MAX_WORDS were explained

    @property
    def probability(self) -> float:
        return float(1 / (1 + np.exp(-self.logit)))

    @property
    def label(self) -> str:
        return "positive" if self.logit >= 0 else "negative"

    def top(self, k: int = 5, sign: int = 1) -> list[tuple[str, float]]:
        """The k words that pushed hardest towards positive (sign 1) or negative (sign -1)."""
        order = np.argsort(-sign * self.attributions, kind="stable")[:k]
        return [
            (self.words[i], float(self.attributions[i]))
            for i in order
            if sign * self.attributions[i] > 0
        ]

    def as_dict(self, k: int = 5) -> dict:
        """The explanation as JSON takes it (the server's explain route)."""
        return {
            "tokens": self.words,
            "log_odds_changes": self.attributions.tolist(),
            "log_odds": self.logit,
            "probability": self.probability,
            "label": self.label,
            "top_positive": self.top(k, 1),
            "top_negative": self.top(k, -1),
        }


def explain(
    predictor,
    review: str,
    batch_size: int = 256,
    max_words: int = MAX_WORDS,
    tokens: list[str] | None = None,
) -> Explanation:
    """Occlusion of the review's first max_words tokens (above). `tokens`: the review's, from
    predictor.tokens(review), where the caller has them already."""
    tokens = predictor.tokens(review) if tokens is None else tokens
    logit = float(predictor.logits([review])[0])
    # Every variant is the whole review less one token, also past max_words: the attributions are
    # changes of the prediction actually made.
    n = min(len(tokens), max_words)
    variants = [tokens[:i] + tokens[i + 1 :] for i in range(n)]
    without = predictor.token_logits(variants, batch_size) if n else []
    return Explanation(tokens[:n], logit - np.asarray(without, np.float64), logit, len(tokens) > n)


def render_terminal(e: Explanation, color: bool = True) -> str:
    """The review with each word on a green (positive) or red (negative) background by strength."""
    scale = max(float(np.abs(e.attributions).max(initial=0)), 1e-9)
    out = []
    for word, a in zip(e.words, e.attributions):
        level = min(int(abs(a) / scale * 5), 4)  # 5 intensity steps of the 256-colour palette
        if not color or level == 0:
            out.append(word)
            continue
        bg = (22, 28, 34, 40, 46)[level] if a > 0 else (52, 88, 124, 160, 196)[level]
        out.append(f"\033[48;5;{bg}m\033[38;5;16m{word}\033[0m")
    return " ".join(out)


def summary(e: Explanation, k: int = 5) -> str:
    fmt = ", ".join
    lines = [
        f"{e.label} (P(positive) {e.probability:.4f}, log-odds {e.logit:+.2f}); "
        "occlusion: log-odds change "
        f"when each word is removed"
    ]
    lines.append(
        "  pushed towards positive: " + (fmt(f"{w} {a:+.2f}" for w, a in e.top(k, 1)) or "-")
    )
    lines.append(
        "  pushed towards negative: " + (fmt(f"{w} {a:+.2f}" for w, a in e.top(k, -1)) or "-")
    )
    if e.truncated:
        lines.append(
            f"  (only the first {len(e.words)} words were explained; the probability is "
            f"the whole review's)"
        )
    return "\n".join(lines)


def render_html(e: Explanation) -> str:
    scale = max(float(np.abs(e.attributions).max(initial=0)), 1e-9)
    spans = []
    for word, a in zip(e.words, e.attributions):
        rgb = "0,160,60" if a > 0 else "210,40,40"
        spans.append(
            f'<span title="{a:+.3f}" style="background: rgba({rgb},{abs(a) / scale:.2f})">'
            f"{html.escape(word)}</span>"
        )
    body = html.escape(summary(e)).replace("\n", "<br>\n")
    return f"<section>\n<p>{body}</p>\n<p>{' '.join(spans)}</p>\n</section>\n"


def html_page(sections: list[str]) -> str:
    return (
        '<!doctype html>\n<meta charset="utf-8">\n<title>Why these predictions</title>\n'
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.9}"
        "span{padding:0.1em 0.15em;border-radius:0.2em}"
        "section{border-bottom:1px solid #ccc}</style>\n"
        "<p><small>Green: the word pushed the prediction towards positive; red: towards negative. "
        "Hover a word for its log-odds change (occlusion: the word removed).</small></p>\n"
        + "".join(sections)
    )

"""Caption templates of the lab's own CLIP: every caption names the content and the style.

A caption is a style template filled with a content noun phrase, e.g. "a pencil sketch of a digit seven",
"a photo of a woman's face". ``captions(domain, label, style)`` lists all captions of one
(domain, class, style) cell; ``vocabulary()`` is the set of words the shipped CLIP ever saw.
"""
from __future__ import annotations

import re

from lab.data.styles import STYLES
from lab.errors import LabError

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FASHION_WORDS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                 "ankle boot"]
GENDER_WORDS = ["man", "woman"]  # UTKFace gender 0 = male, 1 = female

# the domains of the training set: dataset -> (domain, native size used to render the styles)
DOMAINS = {"mnist": ("digit", 28), "usps": ("digit", 28), "fashion": ("fashion", 28), "utkface": ("face", 64)}

# style templates; {c} is a content noun phrase without article
STYLE_TEMPLATES: dict[str, list[str]] = {
    "plain": ["a {c}", "a photo of a {c}", "an image of a {c}", "a plain {c}", "a photo of the {c}"],
    "sketch": ["a sketch of a {c}", "a pencil sketch of a {c}", "a drawing of a {c}", "a pencil sketch of the {c}"],
    "negative": ["a negative of a {c}", "an inverted {c}", "a negative image of a {c}"],
    "bold": ["a bold {c}", "a thick {c}", "a bold photo of a {c}"],
    "thin": ["a thin {c}", "a faint thin {c}", "a thin photo of a {c}"],
    "colored": ["a colored {c}", "a {c} on a colorful background", "a colorful photo of a {c}"],
    "blur": ["a blurred {c}", "a blurry {c}", "a blurry photo of a {c}"],
}
assert tuple(STYLE_TEMPLATES) == STYLES


def content_phrases(domain: str, label: int | None) -> list[str]:
    """Noun phrases naming the content; ``label=None`` gives the class-free phrases ("digit", "face")."""
    if domain == "digit":
        generic = ["digit", "handwritten digit"]
        if label is None:
            return generic
        return generic + [f"digit {DIGIT_WORDS[label]}", f"digit {label}", f"handwritten {DIGIT_WORDS[label]}"]
    if domain == "fashion":
        generic = ["piece of clothing"]
        return generic if label is None else generic + [FASHION_WORDS[label], f"{FASHION_WORDS[label]} garment"]
    if domain == "face":
        generic = ["face"]
        if label is None:
            return generic
        g = GENDER_WORDS[label]
        return generic + [f"{g}'s face", f"face of a {g}", g]
    raise LabError(f"Unknown caption domain {domain!r}: use digit, fashion or face.")


def captions(domain: str, label: int | None, style: str) -> list[str]:
    return [t.format(c=c) for t in STYLE_TEMPLATES[style] for c in content_phrases(domain, label)]


def class_names(domain: str) -> list[str]:
    return {"digit": DIGIT_WORDS, "fashion": FASHION_WORDS, "face": GENDER_WORDS}[domain]


def all_captions() -> list[str]:
    out = []
    for domain in ("digit", "fashion", "face"):
        for label in [None, *range(len(class_names(domain)))]:
            for style in STYLES:
                out += captions(domain, label, style)
    return sorted(set(out))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)?", text.lower())


def vocabulary() -> list[str]:
    return sorted({w for c in all_captions() for w in words(c)})


MAX_PROMPT_CHARS = 120


def check_prompt(text, vocab: list[str] | None, what: str = "prompt") -> str:
    """The cleaned prompt; LabError when it is empty, too long, or (for a CLIP with a known
    vocabulary) uses words the CLIP never saw."""
    text = " ".join(str(text or "").split())
    if not text:
        raise LabError(f"The {what} is empty: write a short description, e.g. \"a sketch of a digit\".")
    if len(text) > MAX_PROMPT_CHARS:
        raise LabError(f"The {what} is {len(text)} characters long; keep it under {MAX_PROMPT_CHARS} "
                       "(CLIP reads only a short context).")
    if vocab is not None:
        unknown = [w for w in words(text) if w not in set(vocab)]
        if unknown:
            raise LabError(f"The {what} uses word(s) the shipped CLIP never saw: {', '.join(unknown)}. "
                           f"It knows: {', '.join(vocab)}. Use those words, or load a general CLIP "
                           "(e.g. ViT-B-32 / openai, online).")
    return text

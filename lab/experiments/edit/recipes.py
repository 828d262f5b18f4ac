"""The DiffusionCLIP recipe for each kind of backbone (t0, loss weights, CLIP views, iterations, lr), chosen on
validation images only (bench/edit.py --validation: training images the fine-tuning did not use;
docs/RESULTS.md holds the search). The editing tab opens with the
recipe of its default backbone and switches recipe with the backbone; the batch-adaptation translators and the
bench use the same table."""
from __future__ import annotations

# keys are EditConfig fields
DIGITS = dict(t0=500, lambda_clip=1.0, lambda_l1=0.0, lambda_id=0.0, lambda_struct=1.0, identity="auto",
              clip_views=4, iterations=32, lr=5e-4, n_train=16)
FACES = dict(t0=500, lambda_clip=1.0, lambda_l1=0.3, lambda_id=1.0, lambda_struct=1.0, identity="face-api",
             clip_views=4, iterations=16, lr=2e-4, n_train=16)
RECIPE_FIELDS = ("t0", "lambda_clip", "lambda_l1", "lambda_id", "lambda_struct", "identity", "clip_views",
                 "iterations", "lr", "n_train")
RECIPES = {"mnist": DIGITS, "usps": DIGITS, "digits": DIGITS, "fashion": DIGITS, "utkface": FACES,
           "celeba": FACES}


def recipe_for(data: str | None) -> dict:
    """The recipe of a backbone trained on ``data`` (the digits' when unknown)."""
    return dict(RECIPES.get(data or "", DIGITS))

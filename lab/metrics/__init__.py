"""Measures: FID/KID, classifier-based quality, domain distances, diversity; ``mean_std`` for over-seed tables."""
from __future__ import annotations

import statistics

# the feature networks FID/KID can use (lab.metrics.fid): the lab's digit classifier, Inception, face-api
FEATURE_NETWORKS = ("classifier", "inception", "face-api")
# the lab classifier that judges each domain and gives its "FID (classifier features)"; faces have none
DOMAIN_CLASSIFIERS = {"mnist": "classifier-mnist", "usps": "classifier-mnist", "digits": "classifier-mnist",
                      "fashion": "classifier-fashion"}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value) of the values that are not NaN; NaNs if none."""
    values = [v for v in values if v == v]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

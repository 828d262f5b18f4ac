"""FID between two sets of features already computed (e.g. a judge classifier's, per class), with torch-fidelity's
own statistics and formula, so it equals ``lab.metrics.fid.fid_kid`` on the same features."""
from __future__ import annotations


def fid_from_features(a, b) -> float | None:
    """FID between feature tensors ``a`` [N, D] and ``b`` [M, D]; None when either has fewer than 2 rows."""
    from threadpoolctl import threadpool_limits
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    if len(a) < 2 or len(b) < 2:
        return None
    with threadpool_limits(limits=1, user_api="blas"):  # a D×D eigen-problem (D = 128 for the judge): threads only cost
        stats = fid_features_to_statistics(a.float()), fid_features_to_statistics(b.float())
        return float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])

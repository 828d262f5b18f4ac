"""How far apart two domains are, by one linear domain classifier (standardised features, L2-regularised
logistic regression): the proxy A-distance (Ben-David et al., 2007; Ganin et al., 2016) and its
cross-validated accuracy.

``proxy_a_distance``: the classifier learns to tell source features from target features on one half of them;
its error ε on the other half gives PAD = 2 (1 − 2ε): 0 when the domains cannot be told apart,
2 when they are perfectly separable. ε is capped at 0.5 (a classifier worse than chance is no
evidence of anything), so PAD ∈ [0, 2].

``separability``: the same classifier's k-fold cross-validated accuracy (0.5 = chance), for small sets where one
half/half split leaves too few samples to judge by.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lab.errors import LabError


def pad_from_error(error: float) -> float:
    """PAD = 2 (1 − 2 min(ε, 0.5))."""
    return 2.0 * (1.0 - 2.0 * min(float(error), 0.5))


@dataclass
class PADResult:
    pad: float
    error: float          # held-out error of the domain classifier
    n_per_domain: int
    dim: int

    def as_dict(self) -> dict:
        return {"pad": self.pad, "domain_error": self.error, "n_per_domain": self.n_per_domain, "dim": self.dim}


def proxy_a_distance(source, target, seed: int = 0, max_per_domain: int = 2000, C: float = 1.0) -> PADResult:
    """PAD between two sets of feature vectors ([N, D] arrays or tensors; images are flattened).

    Both domains are cut to the same size (at most ``max_per_domain``), split half/half into a
    training and a held-out set, standardised, and separated by an L2-regularised logistic
    regression (scikit-learn).
    """
    xs, xt = _matrix(source), _matrix(target)
    if xs.shape[1] != xt.shape[1]:
        raise LabError(f"Both domains need features of the same size ({xs.shape[1]} ≠ {xt.shape[1]}).")
    n = min(len(xs), len(xt), max_per_domain)
    if n < 4:
        raise LabError(f"The proxy A-distance needs at least 4 samples per domain, not {n}.")
    rng = np.random.default_rng(seed)
    xs, xt = xs[rng.permutation(len(xs))[:n]], xt[rng.permutation(len(xt))[:n]]
    half = n // 2
    x_train = np.concatenate([xs[:half], xt[:half]])
    y_train = np.r_[np.ones(half), np.zeros(half)]
    x_test = np.concatenate([xs[half:], xt[half:]])
    y_test = np.r_[np.ones(n - half), np.zeros(n - half)]
    clf = domain_classifier(C)
    clf.fit(x_train, y_train)
    error = float((clf.predict(x_test) != y_test).mean())
    return PADResult(pad_from_error(error), error, n, xs.shape[1])


def domain_classifier(C: float = 1.0):
    """The linear domain classifier (scikit-learn): standardised features, L2-regularised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def separability(a, b, seed: int = 0, folds: int = 5, C: float = 1.0) -> dict:
    """k-fold cross-validated accuracy of ``domain_classifier`` telling two sets apart (the first min(|a|, |b|)
    of each; 0.5 = chance), with its standard deviation over the folds and the PAD of the mean error; empty
    when a set has fewer than ``folds`` samples."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    xa, xb = _matrix(a), _matrix(b)
    n = min(len(xa), len(xb))
    if n < folds:
        return {}
    x = np.concatenate([xa[:n], xb[:n]])
    y = np.r_[np.zeros(n), np.ones(n)]
    scores = cross_val_score(domain_classifier(C), x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    accuracy = float(scores.mean())
    return {"accuracy": accuracy, "std": float(scores.std()), "n_per_set": n, "folds": folds,
            "pad": pad_from_error(1.0 - accuracy)}


def _matrix(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(len(x), -1)

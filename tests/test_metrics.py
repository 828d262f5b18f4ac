"""FID/KID through torch-fidelity with the classifier features, and the classifier measures."""
import math

import pytest
import torch
from conftest import needs_mnist

from lab.errors import LabError
from lab.metrics.classify import class_entropy, confident_fraction
from lab.metrics.fid import fid_kid


def test_confident_fraction_and_entropy_closed_forms():
    probs = torch.tensor([[0.95, 0.05], [0.5, 0.5], [0.05, 0.95], [0.2, 0.8]])
    assert confident_fraction(probs, 0.9) == 0.5
    assert class_entropy(probs) == pytest.approx(-(0.5 * math.log(0.5)) * 2)  # histogram [2, 2]
    assert class_entropy(torch.eye(10)) == pytest.approx(math.log(10))
    assert class_entropy(torch.tensor([[1.0, 0.0]] * 5)) == 0.0


@needs_mnist
def test_fid_orders_real_styled_and_noise():
    from lab.data import load_dataset

    ref = load_dataset("mnist", "test").take(500, seed=0, stratified=False).to_float()
    real = load_dataset("mnist", "train").take(500, seed=1, stratified=False).to_float()
    blurred = load_dataset("mnist", "train", style="blur").take(500, seed=1, stratified=False).to_float()
    same = fid_kid(ref, ref, kid=False).fid
    floor = fid_kid(real, ref)
    assert abs(same) < 1e-3
    assert floor.n == 500 and floor.label == "FID (classifier features)" and "classifier" in floor.feature_network
    assert floor.fid < fid_kid(blurred, ref, kid=False).fid < fid_kid(torch.rand(500, 1, 28, 28) * 2 - 1, ref,
                                                                         kid=False).fid
    with pytest.raises(LabError, match="at least 2"):
        fid_kid(ref[:1], ref)


def test_inception_offline_without_weights_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("LAB_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(LabError, match="LAB_INCEPTION_WEIGHTS"):
        fid_kid(torch.zeros(4, 1, 28, 28), torch.zeros(4, 1, 28, 28), feature_network="inception")

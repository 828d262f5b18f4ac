"""FID and KID through torch-fidelity.

Inception-v3 features need weights that are downloaded (online) or named by ``LAB_INCEPTION_WEIGHTS``.
Offline the lab registers a feature extractor built on its own classifier (the 128-d layer of
``checkpoints/classifier-mnist`` for digits), reported as "FID (classifier features)", and one on the
face-api face-recognition network for faces, "FID (face-api features)". Every result
carries its sample count, its feature network and, when asked, the real-vs-real floor.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from lab.config import get_settings
from lab.errors import LabError
from lab.metrics import FEATURE_NETWORKS

CLASSIFIER_EXTRACTOR = "lab-classifier"
FACE_EXTRACTOR = "lab-face-api"


class ClassifierFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor: uint8 [B,3,H,W] → (embedding [B,hidden], logits [B,K]) of a lab ConvNet."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        from lab.models.store import load_classifier

        self.net = load_classifier(feature_extractor_weights_path or "classifier-mnist").float().eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @staticmethod
    def get_provided_features_list():
        return "embedding", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "embedding", "kid": "embedding", "prc": "embedding"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return (torch.rand([1, 3, 28, 28]) * 255).to(torch.uint8)

    def forward(self, x):
        x = x.float().div(127.5).sub(1.0)
        emb = self.net.embed(x)
        out = {"embedding": emb, "logits": self.net.fc2(torch.relu(emb))}
        return tuple(out[name] for name in self.features_list)


class FaceApiFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor for faces: uint8 [B,3,H,W] → the face-api (dlib ResNet-34) 128-d descriptor."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        from lab.models.faceid import load_face_api

        self.net = load_face_api(feature_extractor_weights_path)

    @staticmethod
    def get_provided_features_list():
        return ("embedding",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        if metric == "isc":
            raise LabError("The face-api descriptor has no class logits: no Inception Score with it.")
        return "embedding"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return (torch.rand([1, 3, 64, 64]) * 255).to(torch.uint8)

    def forward(self, x):
        return (self.net.describe(x.float().div(127.5).sub(1.0)),)


for _name, _cls in ((CLASSIFIER_EXTRACTOR, ClassifierFeatureExtractor), (FACE_EXTRACTOR, FaceApiFeatureExtractor)):
    if _name not in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(_name, _cls)


class _AsUint8(torch.utils.data.Dataset):
    """[-1, 1] images as the uint8 RGB tensors torch-fidelity reads."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = self.images[i].float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        return x.expand(3, -1, -1) if x.shape[0] == 1 else x


@dataclass
class FIDResult:
    fid: float
    kid: float | None
    kid_std: float | None
    n: int
    n_reference: int
    feature_network: str
    label: str  # how to name it in a table: "FID (classifier features)" or "FID (Inception)"

    def as_dict(self) -> dict:
        return asdict(self)


def _extractor(feature_network: str, classifier: str | None) -> tuple[dict, str, str]:
    if feature_network == "classifier":
        path = str(classifier or get_settings().checkpoint_dir / "classifier-mnist")
        return ({"feature_extractor": CLASSIFIER_EXTRACTOR, "feature_extractor_weights_path": path},
                f"classifier ({os.path.basename(path.rstrip('/'))})", "FID (classifier features)")
    if feature_network == "inception":
        weights = os.environ.get("LAB_INCEPTION_WEIGHTS")
        if not weights and get_settings().offline:
            raise LabError("Inception FID needs its weights: set LAB_INCEPTION_WEIGHTS to a local "
                           "pt_inception-2015-12-05 file, go online, or use classifier features.")
        kwargs = {"feature_extractor": "inception-v3-compat"}
        if weights:
            kwargs["feature_extractor_weights_path"] = weights
        return kwargs, "inception-v3-compat", "FID (Inception)"
    if feature_network == "face-api":
        from lab.models.faceid import face_api_folder

        return ({"feature_extractor": FACE_EXTRACTOR, "feature_extractor_weights_path": str(face_api_folder())},
                "face-api (dlib ResNet-34 descriptor)", "FID (face-api features)")
    raise LabError(f"Unknown feature network {feature_network!r}: use {', '.join(FEATURE_NETWORKS)}.")


def fid_kid(samples: torch.Tensor, reference: torch.Tensor, feature_network: str = "classifier",
            classifier: str | None = None, kid: bool = True) -> FIDResult:
    """FID (and KID) between two sets of [-1, 1] images."""
    if len(samples) < 2 or len(reference) < 2:
        raise LabError(f"FID needs at least 2 images on each side (got {len(samples)} and {len(reference)}).")
    kwargs, network, label = _extractor(feature_network, classifier)
    subset = min(1000, len(samples), len(reference))
    metrics = torch_fidelity.calculate_metrics(
        input1=_AsUint8(samples), input2=_AsUint8(reference), fid=True, kid=kid and subset >= 2,
        kid_subset_size=subset, batch_size=250, cuda=torch.cuda.is_available(), save_cpu_ram=True,
        verbose=False, **kwargs)
    return FIDResult(float(metrics["frechet_inception_distance"]),
                     float(metrics["kernel_inception_distance_mean"]) if kid else None,
                     float(metrics["kernel_inception_distance_std"]) if kid else None,
                     len(samples), len(reference), network, label)

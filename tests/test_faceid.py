"""The face-api identity network: loader, descriptors that tell people apart, clear errors, the identity loss."""
from __future__ import annotations

import shutil

import pytest
import torch
from conftest import needs_face_api, needs_utkface

from lab.data import load_dataset
from lab.errors import LabError
from lab.models.faceid import MANIFEST, SAME_PERSON, face_api_folder, load_face_api
from lab.train.diffusionclip import DiffusionClipLoss, FaceIdentity


@pytest.fixture(scope="module")
def face_net():
    return load_face_api()


@needs_face_api
def test_the_loaded_network_has_the_documented_size(face_net):
    assert sum(b.numel() for b in face_net.buffers()) == pytest.approx(5.6e6, rel=0.01)
    out = face_net(torch.full((2, 3, 150, 150), 128.0))
    assert out.shape == (2, 128) and torch.isfinite(out).all()


@needs_face_api
@needs_utkface
def test_descriptors_tell_people_apart_and_ignore_a_mirror(face_net):
    faces = load_dataset("utkface", "test", size=64, limit=48, seed=0).to_float()
    with torch.no_grad():
        f = face_net.describe(faces)
        mirrored = face_net.describe(faces.flip(-1))
    others = torch.cdist(f, f)[~torch.eye(len(f), dtype=torch.bool)]
    same = (f - mirrored).norm(dim=1)
    # dlib's descriptor: different people lie beyond the 0.6 threshold, a mirrored face well within it
    assert float(others.mean()) > SAME_PERSON + 0.1
    assert float((others < SAME_PERSON).float().mean()) < 0.1
    assert float(same.mean()) < SAME_PERSON / 2 and float((same < SAME_PERSON).float().mean()) > 0.95


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(LabError, match=r"face-api.*LAB_WEIGHTS_DIR"):
        face_api_folder()


@needs_face_api
def test_damaged_weights_are_named(tmp_path):
    folder = tmp_path / "face-api"
    shutil.copytree(face_api_folder(), folder)
    blob = folder / "face_recognition_model.bin"
    blob.write_bytes(blob.read_bytes()[:100_000])
    with pytest.raises(LabError, match="cannot be read"):
        load_face_api(folder)
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(LabError, match="cannot be read"):
        load_face_api(folder)


class _LinearClip(torch.nn.Module):
    def encode_images(self, x):
        return torch.nn.functional.normalize(x.mean((2, 3)), dim=-1)

    def encode_text(self, texts):
        return torch.eye(3)[: len(texts)]


@needs_face_api
def test_face_identity_loss_is_zero_for_the_original_and_has_a_gradient(face_net):
    loss = DiffusionClipLoss(_LinearClip(), "a", "b", lambda_clip=1.0, lambda_id=1.0, identity=FaceIdentity(face_net))
    torch.manual_seed(0)
    originals = torch.rand(2, 3, 64, 64) * 2 - 1
    _, parts = loss(originals, originals.clone())
    assert parts["id"] == pytest.approx(0.0, abs=1e-5)
    edited = (originals + 0.5 * torch.randn_like(originals)).clamp(-1, 1).requires_grad_(True)
    total, parts = loss(originals, edited)
    total.backward()
    assert parts["id"] > 0.001 and edited.grad.abs().sum() > 0
    identity = FaceIdentity(face_net)
    assert identity.kept(identity.features(originals), identity.features(originals)).all()


@needs_face_api
@needs_utkface
def test_fid_with_face_api_features_ranks_noise_far_from_faces():
    from lab.metrics.fid import fid_kid

    real = load_dataset("utkface", "test", size=64, limit=40, seed=0).to_float()
    other = load_dataset("utkface", "train", size=64, limit=40, seed=1).to_float()
    noise = torch.rand(40, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    faces = fid_kid(other, real, "face-api", kid=False)
    assert faces.label == "FID (face-api features)" and faces.n == 40
    assert fid_kid(noise, real, "face-api", kid=False).fid > 2 * faces.fid  # measured: 0.51 vs 0.21

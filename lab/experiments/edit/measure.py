"""How an edit went: the CLIP direction before (reconstruction) and after (edit), the inversion error, the
distance to the original and, with an identity network, how often the identity is kept."""
from __future__ import annotations

import torch

from lab.train.diffusionclip import DiffusionClipLoss, directional_cosine


@torch.no_grad()
def measure(clip, loss: DiffusionClipLoss, originals, reconstructions, edited, identity=None) -> dict:
    device = loss.text_direction.device
    o, r, e = originals.to(device), reconstructions.to(device), edited.to(device)
    metrics = {
        "clip_direction_before": round(float(directional_cosine(clip, o, r, loss.text_direction).mean()), 4),
        "clip_direction_after": round(float(directional_cosine(clip, o, e, loss.text_direction).mean()), 4),
        "inversion_mse": round(float(((r - o) ** 2).mean()), 5),
        "l1_to_original": round(float((e - o).abs().mean()), 4),
    }
    if identity is not None:
        fo, fe = identity.features(o), identity.features(e)
        metrics[identity.kept_metric] = round(float(identity.kept(fo, fe).float().mean()), 4)
        cos = torch.nn.functional.cosine_similarity(fo, fe, dim=1)
        metrics["identity_feature_cos"] = round(float(cos.mean()), 4)
    return metrics

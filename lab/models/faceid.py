"""The face-api.js face-recognition network (dlib's ResNet-34 descriptor: 150×150 RGB → 128-d), rebuilt in
PyTorch and loaded from its TensorFlow.js files (``face_recognition_model-weights_manifest.json`` + ``.bin``).

Layout as in ``@vladmandic/face-api`` ``src/faceRecognitionNet/``: a 7×7/2 conv and a 3×3/2 max-pool, residual
blocks of 32, 64, 128 and 256 channels whose down-sampling blocks add an average-pooled shortcut padded with
zero channels; every conv is followed by a per-channel scale (its BatchNorm folded) and, except the last of a
block, a ReLU. Descriptors of one person lie within Euclidean distance 0.6 (dlib's threshold).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lab.config import get_settings
from lab.errors import LabError

MANIFEST = "face_recognition_model-weights_manifest.json"
MEAN_RGB = (122.782, 117.001, 104.298)
SAME_PERSON = 0.6
BLOCKS = ("conv32_1", "conv32_2", "conv32_3", "conv64_down", "conv64_1", "conv64_2", "conv64_3", "conv128_down",
          "conv128_1", "conv128_2", "conv256_down", "conv256_1", "conv256_2", "conv256_down_out")


class FaceRecognitionNet(torch.nn.Module):
    """Tensors keep their TF.js names (``conv32_1/conv1/conv/filters`` → ``conv32_1.conv1.conv.filters``)."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        super().__init__()
        for name, value in tensors.items():
            self.register_buffer(name.replace("/", "__"), value)

    def _p(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace("/", "__"))

    def _conv(self, x, name: str, stride: int = 1, relu: bool = True):
        w = self._p(f"{name}/conv/filters").permute(3, 2, 0, 1)  # TF [kh, kw, in, out] → [out, in, kh, kw]
        out = F.conv2d(x, w, self._p(f"{name}/conv/bias"), stride=stride,
                       padding=0 if stride == 2 else w.shape[-1] // 2)  # TF 'valid' when down-sampling, else 'same'
        scale, shift = self._p(f"{name}/scale/weights"), self._p(f"{name}/scale/biases")
        out = out * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
        return F.relu(out) if relu else out

    def _block(self, x, name: str):
        down = name.endswith(("_down", "_down_out"))
        out = self._conv(self._conv(x, f"{name}/conv1", stride=2 if down else 1), f"{name}/conv2", relu=False)
        if down:
            shortcut = F.avg_pool2d(x, 2, 2)
            pad_hw = shortcut.shape[-1] - out.shape[-1]           # 'valid' conv lost a row/column: pad with zeros
            out = F.pad(out, (0, pad_hw, 0, pad_hw))
            x = F.pad(shortcut, (0, 0, 0, 0, 0, out.shape[1] - shortcut.shape[1]))  # more channels: zero channels
        return F.relu(out + x)

    def forward(self, rgb255: torch.Tensor) -> torch.Tensor:
        """[N, 3, 150, 150] RGB in 0…255 → [N, 128] descriptors."""
        mean = torch.tensor(MEAN_RGB, device=rgb255.device, dtype=rgb255.dtype).view(1, 3, 1, 1)
        x = self._conv((rgb255 - mean) / 256, "conv32_down", stride=2)
        x = F.max_pool2d(x, 3, 2)
        for name in BLOCKS:
            x = self._block(x, name)
        return x.mean((2, 3)) @ self._p("fc")

    def describe(self, images: torch.Tensor) -> torch.Tensor:
        """Descriptors of [-1, 1] RGB images of any size (resized to 150 px, differentiably)."""
        x = F.interpolate(images.float(), size=(150, 150), mode="bilinear", align_corners=False, antialias=False)
        return self((x + 1) * 127.5)


def face_api_folder() -> Path:
    """Where the weights are looked for: ``LAB_WEIGHTS_DIR``/face-api, then ``LAB_DATA_DIR``/../weights/face-api."""
    s = get_settings()
    candidates = [s.weights_dir / "face-api", s.data_dir.parent / "weights" / "face-api"]
    for folder in candidates:
        if (folder / MANIFEST).is_file():
            return folder
    raise LabError("The face-api face-recognition weights were not found: put face_recognition_model.bin and "
                   f"{MANIFEST} (npm package @vladmandic/face-api, folder model/) in {candidates[0]} "
                   "(or set LAB_WEIGHTS_DIR), or choose the identity loss 'none'.")


def load_face_api(folder: Path | None = None, device: torch.device | str = "cpu") -> FaceRecognitionNet:
    """Read the TF.js manifest and its binary shard(s); uint8-quantised tensors are ``q · scale + min``."""
    folder = Path(folder) if folder is not None else face_api_folder()
    try:
        groups = json.loads((folder / MANIFEST).read_text())
        tensors = {}
        for group in groups:
            blob = b"".join((folder / path).read_bytes() for path in group["paths"])
            offset = 0
            for spec in group["weights"]:
                count = math.prod(spec["shape"])
                quant = spec.get("quantization")
                if quant:
                    dtype = np.dtype(quant["dtype"])
                    raw = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).astype(np.float32)
                    values = raw * quant["scale"] + quant["min"]
                else:
                    dtype = np.dtype(spec["dtype"])
                    values = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).astype(np.float32)
                offset += count * dtype.itemsize
                tensors[spec["name"]] = torch.from_numpy(values.reshape(spec["shape"]).copy())
            if offset != len(blob):
                raise ValueError(f"the manifest describes {offset} bytes, the shard has {len(blob)}")
        net = FaceRecognitionNet(tensors)
        with torch.no_grad():
            net(torch.zeros(1, 3, 150, 150))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise LabError(f"The face-api weights in {folder} cannot be read ({err}): download them again.") from None
    return net.eval().to(device).requires_grad_(False)

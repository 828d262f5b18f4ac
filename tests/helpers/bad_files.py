"""The bad files the bad-input tests feed the lab: broken images, odd modes, a decompression bomb, a folder that is
not a model and damaged copies of shipped models. Used by tests/test_bad_input.py and tests/test_validators.py."""
from __future__ import annotations

import io
import shutil
import struct
import zlib
from pathlib import Path

from conftest import ROOT
from PIL import Image

CHECKPOINTS = ROOT / "checkpoints"
LONG = "x" * 10_000  # an over-long text or path
NAN = "nan"  # JSON cannot carry a float NaN, so the API client sends it as text (as a raw request could)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def solid_png(path: Path, width: int, height: int) -> Path:
    """A valid all-black 8-bit grey PNG of any size, written row by row: a few hundred KB on disk however large
    it is decoded (a decompression-bomb candidate), without ever holding it in memory."""
    squash, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
    for _ in range(height):
        parts.append(squash.compress(row))
    parts.append(squash.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b""))
    return path


def make_bad_files(root: Path) -> dict[str, Path]:
    """Broken, odd-mode and oversized images, a folder that is not a model, and shipped models with their weights
    cut in half, under ``root``; returns the folders by name ("root", "images", "not_a_model", "truncated")."""
    images = root / "images"
    images.mkdir()
    Image.new("L", (28, 28), 0).save(images / "digit.png")
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 40).save(buffer, "PNG")
    (images / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    Image.new("L", (1, 1), 0).save(images / "tiny.png")
    solid_png(images / "bomb.png", 10_000, 10_000)
    solid_png(images / "big.png", 7_000, 7_000)
    Image.new("CMYK", (28, 28), (0, 0, 0, 255)).save(images / "cmyk.jpg")
    (images / "cmyk.png").write_bytes((images / "cmyk.jpg").read_bytes())  # PNG cannot hold CMYK: a JPEG named .png
    Image.new("L", (28, 28), 0).convert("P").save(images / "palette.png")
    Image.new("I;16", (28, 28), 40000).save(images / "grey16.png")
    Image.new("I;16", (40, 40), 40000).save(images / "grey16-big.png")
    Image.new("RGBA", (64, 64), (255, 0, 0, 128)).save(images / "rgba.png")
    Image.new("LA", (28, 28), (0, 255)).save(images / "la.png")
    not_a_model = root / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("hello")
    truncated = root / "truncated"
    for name in ("ddpm-mnist", "cfg-mnist", "classifier-mnist", "clip-lab"):
        shutil.copytree(CHECKPOINTS / name, truncated / name)
        for weights in (truncated / name).rglob("*.safetensors"):
            data = weights.read_bytes()
            weights.write_bytes(data[: len(data) // 2])
    return {"root": root, "images": images, "not_a_model": not_a_model, "truncated": truncated}

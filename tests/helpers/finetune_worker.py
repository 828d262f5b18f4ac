"""Run by tests/test_distributed.py, alone or under ``accelerate launch``: the DiffusionCLIP fine-tune
(``lab.train.diffusionclip.finetune``) of a tiny UNet on fixed images with a deterministic loss; the main process
writes the fine-tuned weights and the loss history to OUT."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


class PullToNegative(torch.nn.Module):
    """A deterministic stand-in for the CLIP loss: the mean squared distance of the edit to the negative image."""

    def forward(self, originals, edited):
        value = ((edited + originals) ** 2).mean()
        return value, {"total": value.item()}


def main(out: str, batch_size: int) -> None:
    from safetensors.torch import save_file

    from lab.diffusion.schedules import make_ddpm_scheduler
    from lab.models.unet import build_unet
    from lab.train.diffusionclip import FinetuneSettings, finetune
    from lab.train.shard import is_main, share

    torch.set_num_threads(1)
    torch.manual_seed(0)
    unet = build_unet("gray28", formulation="ddpm", block_out_channels=(8, 16, 16), attention_head_dim=8)
    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    latents = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    settings = FinetuneSettings(t0=300, n_train_step=2, iterations=2, lr=1e-3, batch_size=batch_size, seed=4)
    tuned, history = finetune(unet, make_ddpm_scheduler(), images, latents, PullToNegative(), settings)
    if is_main():
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "processes.json").write_text(json.dumps(share()[1]))
        (Path(out) / "history.json").write_text(json.dumps(history))
        save_file({k: v.contiguous() for k, v in tuned.state_dict().items()}, str(Path(out) / "weights.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

"""Run by tests/test_distributed.py, alone or under ``accelerate launch``: a short fit() of a tiny UNet on fixed
synthetic images; the main process writes the loss curve (and the final weights) to OUT."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(out: str, steps: int, stop_at: int, checkpoint: str) -> None:
    from safetensors.torch import save_file

    from lab.diffusion.schedules import make_ddpm_scheduler
    from lab.models.unet import build_unet
    from lab.train.config import TrainConfig
    from lab.train.loop import fit
    from lab.train.losses import EpsilonLoss
    from lab.train.shard import is_main

    torch.set_num_threads(1)
    torch.manual_seed(0)
    unet = build_unet("gray28", formulation="ddpm", block_out_channels=(8, 16, 16), attention_head_dim=8)
    images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    config = TrainConfig(steps=steps, batch_size=16, lr=1e-3, warmup=2, ema_decay=0.9, checkpoint_every=1000,
                         log_every=1, seed=3, device="cpu")

    def stop(step, model):
        if stop_at and step == stop_at:
            raise KeyboardInterrupt

    try:
        result = fit(unet, EpsilonLoss(make_ddpm_scheduler()), images, torch.zeros(64, dtype=torch.long), config,
                     checkpoint_dir=Path(checkpoint) if checkpoint else None, callback=stop)
    except KeyboardInterrupt:
        return
    from lab.train.shard import share

    if is_main():
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "processes.json").write_text(json.dumps(share()[1]))
        (Path(out) / "losses.json").write_text(json.dumps(result.losses))
        save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(Path(out) / "weights.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "")

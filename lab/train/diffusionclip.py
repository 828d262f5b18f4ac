"""DiffusionCLIP (Kim, Kwon & Ye, CVPR 2022): fine-tune a copy of a diffusion UNet so that deterministic
DDIM generation from inverted latents x_{t0} moves images along a text direction in CLIP space.

Loss per image (``DiffusionClipLoss``):
    λ_clip · (1 − cos(ΔI, ΔT)) + λ_L1 · |x̂ − x| + λ_id · (1 − cos(f(x̂), f(x))) + λ_struct · |S(x̂) − S(x)|
with ΔI = E_I(x̂) − E_I(x), ΔT = E_T(target) − E_T(source) (normalised CLIP embeddings), f an
identity network (the digit classifier's features for digits, the face-api descriptor for faces) and S a
polarity-free edge map.

Two fine-tuning variants, as the reference ``clip_finetune`` / ``clip_finetune_eff``:
  * ``full``: the gradient runs through all ``n_train_step`` generative DDIM steps x_{t0} → x̂_0;
  * ``eff``  (memory saving): one step at a time — at every step the loss is taken on that step's
    prediction of x_0 and the optimiser steps; x_t is detached before the next step.

The inverted latents come from ``lab.diffusion.cache.invert_cached``; editing with the fine-tuned UNet is
``lab.diffusion.editing``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from lab.data.styles import sobel_magnitude
from lab.diffusion.samplers import ddim_chain, predict
from lab.errors import LabError
from lab.progress import ProgressFn

# --- the loss --------------------------------------------------------------------------------

def directional_cosine(clip, originals: torch.Tensor, edited: torch.Tensor, text_direction: torch.Tensor):
    """cos(ΔI, ΔT) per image: ΔI = E_I(edited) − E_I(original), ΔT given (one vector)."""
    delta = clip.encode_images(edited) - clip.encode_images(originals).detach()
    return F.cosine_similarity(delta, text_direction.view(1, -1).expand_as(delta), dim=1, eps=1e-8)


class DigitIdentity(torch.nn.Module):
    """Identity of a digit: the classifier's feature vector (``ConvNet.embed``); frozen. An edit keeps the
    identity when the classifier's label stays the same."""
    kept_metric = "identity_label_kept"

    def __init__(self, classifier):
        super().__init__()
        self.net = classifier.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(x)

    def kept(self, f_original: torch.Tensor, f_edited: torch.Tensor) -> torch.Tensor:
        """Same label, from the ``features`` of both (the classifier's head: fc2 ∘ ReLU, as ``ConvNet.forward``)."""
        return self.net.fc2(F.relu(f_original)).argmax(1) == self.net.fc2(F.relu(f_edited)).argmax(1)


class FaceIdentity(torch.nn.Module):
    """Identity of a face: the face-api (dlib ResNet-34) descriptor of the RGB image; frozen. An edit keeps the
    identity when the two descriptors lie within dlib's same-person distance (0.6)."""
    kept_metric = "identity_same_face"

    def __init__(self, net):
        super().__init__()
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.describe(x)

    def kept(self, f_original: torch.Tensor, f_edited: torch.Tensor) -> torch.Tensor:
        """Same person, from the ``features`` (descriptors) of both."""
        from lab.models.faceid import SAME_PERSON

        return (f_original - f_edited).norm(dim=1) < SAME_PERSON


def augmented_pairs(originals: torch.Tensor, edited: torch.Tensor, views: int, translate: float = 0.1,
                    scale: tuple[float, float] = (0.9, 1.1), degrees: float = 5.0, noise: float = 0.1):
    """``views`` copies of every (original, edited) pair under one random augmentation per copy — a small
    rotation, translation and scaling (kornia ``RandomAffine``, differentiable) and the same Gaussian noise for
    both — so the direction ΔI = E_I(edited view) − E_I(original view) compares like with like, and the CLIP
    loss rewards only changes that survive the views (what CLIPDraw and StyleGAN-NADA rely on)."""
    import kornia.augmentation as K

    c = originals.shape[1]
    both = torch.cat([originals.expand_as(edited), edited], 1).repeat_interleave(views, 0)  # views adjacent
    both = K.RandomAffine(degrees, translate=(translate, translate), scale=scale, padding_mode="border",
                          p=1.0)(both)
    grain = noise * torch.randn_like(both[:, :c])
    return both[:, :c] + grain, both[:, c:] + grain


def structure_map(x: torch.Tensor) -> torch.Tensor:
    """Where the image has edges, whatever their polarity: the smoothed Sobel magnitude of the smoothed image."""
    smooth = TF.gaussian_blur(x, [5, 5], [1.0, 1.0])
    return TF.gaussian_blur(sobel_magnitude(smooth, eps=1e-6), [5, 5], [1.0, 1.0])


class DiffusionClipLoss(torch.nn.Module):
    """λ_clip · directional CLIP loss + λ_L1 · L1 to the original + λ_id · identity loss + λ_struct · structure
    loss (per image, meaned). ``views`` > 0 averages the CLIP direction over that many augmented views.

    The structure loss (L1 between ``structure_map``s) keeps the shapes where they are but, unlike the pixel L1,
    lets brightness and polarity change — a photo → sketch edit must turn a dark background white. It also
    stops a small CLIP from being satisfied by stripe textures it over-reads as a style."""

    def __init__(self, clip, source: str, target: str, lambda_clip: float = 1.0, lambda_l1: float = 0.0,
                 lambda_id: float = 0.0, identity: torch.nn.Module | None = None, views: int = 0,
                 lambda_struct: float = 0.0):
        super().__init__()
        self.clip, self.identity, self.views = clip, identity, views
        self.lambda_clip, self.lambda_l1, self.lambda_id = lambda_clip, lambda_l1, lambda_id
        self.lambda_struct = lambda_struct
        with torch.no_grad():
            t = clip.encode_text([source, target])
        self.register_buffer("text_direction", t[1] - t[0])
        if float(self.text_direction.norm()) < 1e-6:
            raise LabError("The source and target texts have the same CLIP embedding: make them differ.")

    def forward(self, originals: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if self.views > 0:
            a, b = augmented_pairs(originals, edited, self.views)
            cos = directional_cosine(self.clip, a, b, self.text_direction).view(len(edited), self.views).mean(1)
        else:
            cos = directional_cosine(self.clip, originals, edited, self.text_direction)
        clip_loss = (1 - cos).mean()
        l1 = (edited - originals).abs().mean()
        total = self.lambda_clip * clip_loss + self.lambda_l1 * l1
        parts = {"clip": clip_loss.item(), "l1": l1.item(), "cos": cos.mean().item()}
        if self.identity is not None and self.lambda_id > 0:
            f0 = self.identity.features(originals).detach()
            ident = (1 - F.cosine_similarity(self.identity.features(edited), f0, dim=1)).mean()
            total = total + self.lambda_id * ident
            parts["id"] = ident.item()
        if self.lambda_struct > 0:
            struct = (structure_map(edited) - structure_map(originals).detach()).abs().mean()
            total = total + self.lambda_struct * struct
            parts["struct"] = struct.item()
        parts["total"] = total.item()
        return total, parts


# --- deterministic DDIM with gradients --------------------------------------------------------

def ddim_step(unet, ddim, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
    """One η = 0 step of a ``ddim_chain`` scheduler, differentiable; returns (x_{t_prev}, predicted x_0)."""
    out = ddim.step(predict(unet, x, t), t, x)
    return out.prev_sample, out.pred_original_sample


def generate(unet, scheduler, latents: torch.Tensor, num_steps: int, t0: int) -> torch.Tensor:
    """x_{t0} → x_0 by deterministic DDIM (the chain of ``ddim_sample(t0=)``), differentiable: under grad mode the
    graph through every step is kept (the ``full`` variant's loss). Inference uses ``lab.diffusion.editing``."""
    ddim, timesteps = ddim_chain(scheduler, num_steps, t0, clip=False)
    x = latents
    for t in timesteps:
        x, _ = ddim_step(unet, ddim, x, t)
    return x


# --- fine-tuning -------------------------------------------------------------------------------

@dataclass
class FinetuneSettings:
    t0: int = 400
    n_train_step: int = 6
    iterations: int = 4          # passes over the training images
    lr: float = 2e-4
    batch_size: int = 8
    variant: str = "full"        # "full" (gradient through all steps) or "eff" (one step at a time)
    seed: int = 0

    def validate(self) -> None:
        if self.variant not in ("full", "eff"):
            raise LabError(f"Unknown fine-tuning variant {self.variant!r}: use 'full' or 'eff' (memory saving).")
        if not 1 <= self.iterations <= 1000:
            raise LabError(f"Iterations must be between 1 and 1000, not {self.iterations}.")
        if not 0 < self.lr < 1:
            raise LabError(f"The learning rate must be in (0, 1), not {self.lr}.")
        if not 1 <= self.n_train_step <= 200:
            raise LabError(f"Training steps (n_train_step) must be between 1 and 200, not {self.n_train_step}.")


def finetune(unet, scheduler, images: torch.Tensor, latents: torch.Tensor, loss: DiffusionClipLoss,
             settings: FinetuneSettings, progress: ProgressFn | None = None, on_step=None):
    """Fine-tune a copy of ``unet``; returns (fine-tuned UNet, history of loss parts per optimiser step).
    ``on_step(step, total, parts)`` is called after each optimiser step (live curves).

    Under ``accelerate launch`` with N processes it is data-parallel: every process takes every N-th image of
    each batch, and the gradients are averaged over the processes before each step (accelerate's process group),
    so the copies stay identical and a batch's gradient is the mean over its images, as with one process."""
    from lab.train.shard import share

    settings.validate()
    rank, world = share()
    device = latents.device
    tuned = copy.deepcopy(unet).to(device).train()
    for p in tuned.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(tuned.parameters(), lr=settings.lr)
    ddim, steps = ddim_chain(scheduler, settings.n_train_step, settings.t0, clip=False)
    g = torch.Generator().manual_seed(settings.seed)
    n = len(images)
    per_iter = -(-n // settings.batch_size) * (len(steps) if settings.variant == "eff" else 1)
    total, history, done = settings.iterations * per_iter, [], 0
    for it in range(settings.iterations):
        order = torch.randperm(n, generator=g)
        for b in range(0, n, settings.batch_size):
            idx = order[b:b + settings.batch_size]
            weight = 1.0
            if world > 1:  # this process's images of the batch; its gradient weighted by its share
                weight, idx = world * len(idx[rank::world]) / len(idx), idx[rank::world]
            x0, x = images[idx].to(device), latents[idx].to(device)
            if settings.variant == "full":
                edited = generate(tuned, scheduler, x, settings.n_train_step, settings.t0) if len(x) else x
                done = _optimise(opt, loss, x0, edited, history, it, done, world, weight)
                if on_step:
                    on_step(done, total, history[-1])
                if progress:
                    progress(done, total, f"Fine-tuning (loss {history[-1]['total']:.4f})")
            else:
                for t in steps:
                    x_next, x0_pred = ddim_step(tuned, ddim, x, t) if len(x) else (x, x)
                    done = _optimise(opt, loss, x0, x0_pred, history, it, done, world, weight)
                    x = x_next.detach()
                    if on_step:
                        on_step(done, total, history[-1])
                    if progress:
                        progress(done, total, f"Fine-tuning (loss {history[-1]['total']:.4f})")
    return tuned.eval(), history


def _optimise(opt, loss, x0, edited, history, iteration, done, world: int = 1, weight: float = 1.0) -> int:
    opt.zero_grad(set_to_none=True)
    if len(x0):
        value, parts = loss(x0, edited)
        if not torch.isfinite(value):
            raise LabError(f"The fine-tuning loss became {float(value)}: lower the learning rate.")
        (value * weight).backward()
    else:  # more processes than images in this batch: this one adds nothing to the mean
        parts = {"total": float("nan")}
    if world > 1:
        _average_gradients(opt)
    opt.step()
    history.append({"step": done + 1, "iteration": iteration, **parts})
    return done + 1


def _average_gradients(opt) -> None:
    """Mean of every parameter's gradient over the processes (accelerate's all-reduce)."""
    from accelerate.utils import reduce

    params = [p for group in opt.param_groups for p in group["params"]]
    grads = reduce([p.grad if p.grad is not None else torch.zeros_like(p) for p in params], "mean")
    for p, g in zip(params, grads):
        p.grad = g

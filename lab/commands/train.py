"""``python -m lab train <kind>``: every trainable model of the lab, one subcommand per kind.

  python -m lab train ddpm --data mnist --out my-ddpm --steps 6000              # resumable
  python -m lab train ddpm --data mnist --init-from ddpm-mnist --out my-ddpm2 --steps 2000 --lr 3e-4
  python -m lab train cfg --data mnist --init-from ddpm-mnist --out my-cfg
  python -m lab train clip --out my-clip --steps 2000 --batch-size 256

A kind is registered with ``@kind(name, help, defaults, options)``: ``defaults`` are its ``TrainConfig``
defaults (a classifier trains for fewer steps, without EMA), ``options`` adds its own flags. The shared settings
come from ``TrainConfig``'s declaration (lab/train/config.py).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lab.commands.registry import command, command_line, threads_arg
from lab.errors import LabError
from lab.train.config import TrainConfig


@dataclass(frozen=True)
class Kind:
    help: str
    run: Callable            # run(args, config: TrainConfig, progress) -> Path
    defaults: dict = field(default_factory=dict)
    options: tuple = ()      # functions adding the kind's own flags


KINDS: dict[str, Kind] = {}


def kind(name: str, help: str, defaults: dict | None = None, options: tuple = ()):
    def register(fn):
        KINDS[name] = Kind(help, fn, defaults or {}, options)
        return fn
    return register


# --- options shared by several kinds --------------------------------------------------------------------------

def data_options(p: argparse.ArgumentParser) -> None:
    from lab.data.registry import STYLES, dataset_names

    p.add_argument("--data", default="mnist", choices=dataset_names())
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--size", type=int, default=None, help="image size in pixels (default: the dataset's)")
    p.add_argument("--channels", type=int, default=None, choices=[1, 3])
    p.add_argument("--limit", type=int, default=None, help="a seeded class-balanced subset of this many")
    p.add_argument("--style", default="plain", choices=STYLES)
    p.add_argument("--path", default=None, help="folder of images for --data folder")


def data_kwargs(args) -> dict:
    return dict(data=args.data, split=args.split, size=args.size, channels=args.channels, limit=args.limit,
                style=args.style, path=args.path)


def init_from_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init-from", default=None,
                   help="start from the weights of this saved model (a fresh optimizer and schedule); conditional "
                        "kinds: warm-start from an unconditional DDPM (matching weights copied, new layers at zero)")


def fid_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fid-every", type=int, default=0,
                   help="FID (lab classifier features) every this many steps and at the end, into training.json")
    p.add_argument("--fid-n", type=int, default=500, help="samples (and real test images) for each FID")


def ddpm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timesteps", type=int, default=1000,
                   help="T, the number of diffusion steps (the seed's sweep: 10, 100, 1000)")


def score_options(p: argparse.ArgumentParser) -> None:
    auto = lambda text: None if text == "auto" else float(text)  # noqa: E731
    p.add_argument("--sigma-max", type=auto, default=None,
                   help="largest noise level (default auto: the largest distance between two training images)")
    p.add_argument("--sigma-min", type=float, default=0.01, help="smallest noise level (default 0.01)")
    p.add_argument("--levels", type=lambda t: None if t == "auto" else int(t), default=None,
                   help="geometric noise levels (default auto: NCSNv2's overlap rule for the image dimension)")
    p.add_argument("--discrete", action="store_true",
                   help="train on the fixed levels only (NCSN, no preconditioning) instead of the continuous VE SDE")


def conditioning_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--condition-on", default=None,
                   help="utkface gender|age|race|gender-age (10 classes); celeba attributes (the seed's 10, ±1) or one attribute")
    p.add_argument("--p-uncond", type=float, default=None,
                   help="label dropout probability (cfg: 0.1; label-embed/condnorm: 0)")
    p.add_argument("--p-attribute", type=float, default=0.3,
                   help="attribute vectors: probability that a single attribute is left unspecified in training")
    p.add_argument("--norm", default="batch", choices=["batch", "group"],
                   help="condnorm: conditional BatchNorm (the seed's) or conditional GroupNorm")
    p.add_argument("--aux-weight", type=float, default=0.1, help="auxclf: weight λ of the classifier loss")


def clip_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clip-limits", default="mnist=2000,usps=1000,fashion=1000,utkface=1500",
                   help="images per dataset (each rendered in all 7 styles), NAME=N pairs")
    p.add_argument("--clip-distractors", type=float, default=0.5,
                   help="fraction of training images overlaid with a random grating/noise texture")
    p.add_argument("--clip-eval-limit", type=int, default=300,
                   help="held-out test images per dataset and style for the zero-shot accuracy")
    p.add_argument("--clip-jitter", type=float, default=0.0,
                   help="fraction of training images given a random colour jitter (caption unchanged)")
    p.add_argument("--clip-adversarial-eps", type=float, default=0.0,
                   help="adversarial training: L∞ radius of the PGD perturbations ([-1, 1] units; 0: off)")
    p.add_argument("--clip-adversarial-steps", type=int, default=3, help="PGD steps per batch")
    p.add_argument("--clip-adversarial-norm", default="linf", choices=["linf", "l2"],
                   help="the PGD ball: L∞ (signed steps) or L2 per image (normalised steps)")
    p.add_argument("--clip-init-from", default=None,
                   help="start from the weights of this saved lab CLIP (e.g. clip-lab: adversarial fine-tuning)")


# --- the kinds -------------------------------------------------------------------------------------------------

@kind("ddpm", "a DDPM (ε-prediction, T = 1000)", options=(init_from_option, ddpm_options, fid_options))
def _ddpm(args, config, progress) -> Path:
    from lab.train.recipes import train_diffusion

    return train_diffusion("ddpm", args.out, **data_kwargs(args), config=config, resume=not args.no_resume,
                           command=command_line(), progress=progress, init_from=args.init_from,
                           timesteps=args.timesteps, fid_every=args.fid_every, fid_n=args.fid_n)


@kind("score", "a score model (VE SDE, EDM preconditioning; DPM-Solver, predictor–corrector or annealed Langevin)",
      options=(score_options, fid_options))
def _score(args, config, progress) -> Path:
    from lab.train.recipes import train_diffusion

    return train_diffusion("score", args.out, **data_kwargs(args), config=config, sigma_max=args.sigma_max,
                           sigma_min=args.sigma_min, levels=args.levels, continuous=not args.discrete,
                           fid_every=args.fid_every, fid_n=args.fid_n, resume=not args.no_resume,
                           command=command_line(), progress=progress)


@kind("classifier", "the lab's ConvNet on a labelled dataset (judges samples; FID features)",
      defaults=dict(steps=3000, warmup=100, ema_decay=None))
def _classifier(args, config, progress) -> Path:
    from lab.train.recipes import train_classifier

    return train_classifier(args.out, **data_kwargs(args), config=config, resume=not args.no_resume,
                            command=command_line(), progress=progress)


def _conditional(method: str, p_uncond: float):
    def run(args, config, progress) -> Path:
        from lab.train.conditional import train_conditional

        p = p_uncond if args.p_uncond is None else args.p_uncond
        return train_conditional(method, args.out, **data_kwargs(args), condition_on=args.condition_on,
                                 p_uncond=p, p_attribute=args.p_attribute, norm=args.norm, aux_weight=args.aux_weight,
                                 init_from=args.init_from, config=config, resume=not args.no_resume,
                                 command=command_line(), progress=progress)
    return run


_FINE_TUNE = dict(steps=3000, lr=5e-4, warmup=100)
_CONDITIONING = (init_from_option, conditioning_options)
kind("label-embed", "method 1: label embedding added to the time embedding", _FINE_TUNE,
     _CONDITIONING)(_conditional("label-embed", 0.0))
kind("cfg", "methods 1 and 5: label embedding with label dropout (classifier-free guidance)", _FINE_TUNE,
     _CONDITIONING)(_conditional("label-embed", 0.1))
kind("condnorm", "method 2: conditional BatchNorm / GroupNorm in the resnet blocks", _FINE_TUNE,
     _CONDITIONING)(_conditional("condnorm", 0.0))
kind("auxclf", "method 3: unconditional denoiser + a jointly trained classifier head", _FINE_TUNE,
     _CONDITIONING)(_conditional("auxclf", 0.0))


@kind("noisy-classifier", "method 4: p(y | x_t, t) for classifier guidance of an unconditional DDPM",
      dict(steps=3000, lr=5e-4, warmup=100, ema_decay=None), _CONDITIONING)
def _noisy(args, config, progress) -> Path:
    from lab.train.conditional import train_noisy_classifier

    return train_noisy_classifier(args.out, **data_kwargs(args), condition_on=args.condition_on,
                                  init_from=args.init_from, config=config, resume=not args.no_resume,
                                  command=command_line(), progress=progress)


@kind("judge", "a clean classifier of the labels a conditional model uses (the independent judge)",
      dict(steps=3000, lr=1e-3, warmup=100, ema_decay=None), (conditioning_options,))
def _judge(args, config, progress) -> Path:
    from lab.train.conditional import train_judge

    return train_judge(args.out, **data_kwargs(args), condition_on=args.condition_on, config=config,
                       resume=not args.no_resume, command=command_line(), progress=progress)


def gan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latent-dim", type=int, default=64, help="size of the generator's input z")
    p.add_argument("--width", type=int, default=32, help="the generator's last hidden width (D has twice it)")


@kind("gan", "the DCGAN baseline (generator + discriminator, non-saturating loss)",
      dict(steps=5000, lr=2e-4, warmup=0, ema_decay=None), (gan_options, fid_options))
def _gan(args, config, progress) -> Path:
    from lab.train.gan import train_gan

    return train_gan(args.out, **data_kwargs(args), config=config, latent_dim=args.latent_dim, width=args.width,
                     resume=not args.no_resume, command=command_line(), progress=progress,
                     fid_every=args.fid_every, fid_n=args.fid_n)


def _limits(text: str) -> dict[str, int]:
    from lab.clip.vocab import DOMAINS

    out = {}
    for part in text.split(","):
        name, sep, n = part.strip().partition("=")
        if not sep or name not in DOMAINS or not n.strip().isdigit():
            raise LabError(f"--clip-limits takes NAME=N pairs with NAME one of {', '.join(DOMAINS)} (got {part!r}).")
        out[name] = int(n)
    return out


@kind("clip", "the lab's small CLIP (open_clip) on its digits and faces in 7 styles",
      dict(steps=2000, lr=1e-3, warmup=100, ema_decay=None), (clip_options,))
def _clip(args, config, progress) -> Path:
    from lab.train.clip import Adversarial, train_clip

    adversarial = (Adversarial(args.clip_adversarial_eps, args.clip_adversarial_steps,
                               norm=args.clip_adversarial_norm) if args.clip_adversarial_eps > 0 else None)
    return train_clip(Path(args.out), config, limits=_limits(args.clip_limits), eval_limit=args.clip_eval_limit,
                      resume=not args.no_resume, command=command_line(), progress=progress,
                      distractors=args.clip_distractors, jitter=args.clip_jitter, adversarial=adversarial,
                      init_from=args.clip_init_from)


# --- the command -----------------------------------------------------------------------------------------------

def _arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    for name, k in KINDS.items():
        q = sub.add_parser(name, help=k.help, description=f"Train {k.help}.")
        q.add_argument("--out", required=True, type=Path,
                       help="model folder to write (resumed if it has a checkpoint)")
        if name != "clip":
            data_options(q)
        TrainConfig.add_arguments(q, defaults=k.defaults)
        q.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
        threads_arg(q)
        for options in k.options:
            options(q)


@command("train", "train a model (DDPM, score model, classifier, conditional models, CLIP) and save a model folder",
         _arguments)
def _train(args, progress) -> dict:
    k = KINDS[args.kind]
    config = TrainConfig.from_args(args, base=k.defaults).validate()
    return {"saved": str(k.run(args, config, progress))}

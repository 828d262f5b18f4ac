"""Independent judges of an edit: a style classifier (the 7 styles of lab.data.styles) and a style-robust label
classifier (digit, garment, gender), both the lab's ConvNet and neither related to CLIP.

A judge is part of the measurement, so the style judge is trained with **off-target negatives**: plain images
after changes that are not a style — a colour tint, a hue shift, lower contrast, brightening, mixes of them, and
(colour images) dark outlines drawn over a brightened, tinted, hue-shifted photo — keep the label "plain" (blur is a style
of its own). ``false_style_rates`` reports, per change, how often
the judge still calls such an image the target style; the bench requires ≤ 5 % for "sketch".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as TF

from lab.data.registry import STYLES


def _tint(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Multiply each channel by a random factor (a colour cast); grey images get a grey level change."""
    factors = 0.55 + 0.45 * torch.rand(len(x), x.shape[1], 1, 1, generator=g)
    if x.shape[1] == 3:  # keep one channel bright, so the cast is a colour, not just darker
        factors[torch.arange(len(x)), torch.randint(0, 3, (len(x),), generator=g)] = 1.0
    return x * factors


def _hue(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    if x.shape[1] != 3:
        return x
    shift = (torch.rand(1, generator=g).item() - 0.5) * 0.8
    return TF.adjust_hue(x, shift)


def _low_contrast(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    factor = 0.35 + 0.35 * torch.rand(1, generator=g).item()
    return TF.adjust_contrast(x, factor) if x.shape[1] == 3 else (x - x.mean()) * factor + x.mean()


def _brighten(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    lift = 0.25 + 0.35 * torch.rand(len(x), 1, 1, 1, generator=g)
    return x + (1 - x) * lift  # towards white, as a washed-out edit


def _washed_out(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A tint, lower contrast and brightening at once (what a failed photo → sketch edit tends to look like)."""
    return _brighten(_low_contrast(_tint(x, g), g), g)


def _blur(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    sigma = 0.8 * x.shape[-1] / 28
    k = 2 * round(2 * sigma) + 1
    return TF.gaussian_blur(x, [k, k], [sigma, sigma])


def _lines_over_colour(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A brightened, hue-shifted, tinted photo with dark outlines drawn over it — what a failed photo →
    pencil-sketch edit looks like (the photo's colour and shading remain under the lines). A pencil sketch is grey
    lines on white paper, so this is *not* one. Colour images only (on grey digits it would be a sketch)."""
    from lab.data.styles import sketch

    lines = sketch(x.mul(255).round().to(torch.uint8)).float() / 255.0
    return _tint(_hue(_brighten(x, g), g), g) * (0.4 + 0.6 * lines)


# the words of the shipped CLIP's style templates (lab/clip/vocab.py) → the style a judge checks for
STYLE_WORDS = {"sketch": "sketch", "pencil": "sketch", "drawing": "sketch", "negative": "negative",
               "inverted": "negative", "bold": "bold", "thick": "bold", "thin": "thin", "faint": "thin",
               "colored": "colored", "colorful": "colored", "blurred": "blur", "blurry": "blur"}


def style_of_prompt(text: str) -> str | None:
    """The style a target prompt asks for ("a pencil sketch of a face" → sketch), or None (no judge for it)."""
    import re

    for word in re.findall(r"[a-z]+", text.lower()):
        if word in STYLE_WORDS:
            return STYLE_WORDS[word]
    return None


OFF_TARGET = {"tint": _tint, "hue shift": _hue, "lower contrast": _low_contrast, "brightened": _brighten,
              "washed out": _washed_out, "slight blur": _blur, "lines over colour": _lines_over_colour}
NOT_FOR_GREY = ("lines over colour",)               # on grey images this would be the target style itself
COLOUR_ONLY = ("hue shift", *NOT_FOR_GREY)           # no change, or not off target, on grey images


def off_target(images: torch.Tensor, change: str, seed: int = 0) -> torch.Tensor:
    """uint8 images after an off-target change (not a style)."""
    g = torch.Generator().manual_seed(seed)
    x = images.float() / 255.0
    return OFF_TARGET[change](x, g).clamp(0, 1).mul(255).round().to(torch.uint8)


def render_styles(images: torch.Tensor, seed: int = 0, negatives: bool = True):
    """(uint8 images, style index) of ``images`` in every style, plus (``negatives``) each off-target change of
    the plain images labelled plain (except 'slight blur', which is labelled blur)."""
    from lab.data.imageset import set_channels
    from lab.data.styles import apply_style

    xs, labels = [], []
    for i, style in enumerate(STYLES):
        x = apply_style(images, style, seed=seed + i) if style != "plain" else images
        xs.append(set_channels(x, images.shape[1]))
        labels.append(torch.full((len(x),), i))
    if negatives:
        for j, change in enumerate(OFF_TARGET):
            if change in NOT_FOR_GREY and images.shape[1] != 3:
                continue
            xs.append(off_target(images, change, seed + 100 + j))
            labels.append(torch.full((len(images),), STYLES.index("blur" if change == "slight blur" else "plain")))
    return torch.cat(xs), torch.cat(labels)


@dataclass
class Judges:
    style: torch.nn.Module
    label: torch.nn.Module
    style_accuracy: float          # on held-out test images in every style
    label_accuracy: float          # on held-out test images in every style
    label_on_plain: float          # on held-out plain test images
    label_on_target: float         # on held-out test images in the target style (e.g. procedural sketches)
    false_target: dict             # change → fraction of plain test images called the target style after it
    target: str

    def style_fraction(self, images: torch.Tensor) -> float:
        """Share of [-1, 1] images the style judge calls the target style."""
        return float(self._styled(images).float().mean())

    def _styled(self, images: torch.Tensor) -> torch.Tensor:
        """Per image, whether the style judge calls it the target style (bool, on the CPU)."""
        from lab.metrics.classify import outputs

        return (outputs(self.style, images).argmax(1) == STYLES.index(self.target)).cpu()

    def label_kept(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        from lab.metrics.classify import accuracy

        return accuracy(self.label, images, labels)

    def landed(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Share of [-1, 1] images that are *both* called the target style and still read as their label — an
        edit that collapses every image into one target-looking blob scores high on ``style_fraction`` alone,
        never here."""
        from lab.metrics.classify import logits_to_labels, outputs

        kept = logits_to_labels(outputs(self.label, images)) == labels.cpu()
        return float((self._styled(images) & kept).float().mean())

    def summary(self) -> dict:
        return {"style_judge_test_accuracy": round(self.style_accuracy, 4),
                "label_judge_test_accuracy": round(self.label_accuracy, 4),
                "label_judge_on_originals": round(self.label_on_plain, 4),
                f"label_judge_on_{self.target}": round(self.label_on_target, 4),
                "false_target_rate": {k: round(v, 4) for k, v in self.false_target.items()},
                "false_target_rate_max": round(max(self.false_target.values()), 4)}


def train_judges(data: str, target: str = "sketch", limit: int | None = 2000, steps: int = 600, seed: int = 0,
                 label_target: str | None = None, cache: bool = True) -> Judges:
    """Train (or read from the cache) the style and label judges for ``data`` on ``limit`` training images (None:
    all) in every style and off-target change (``label_target``: the label kind of datasets with several, e.g.
    UTKFace gender), and measure them on held-out test images."""
    from safetensors.torch import load_file, save_file

    from lab.config import get_settings
    from lab.data import load_dataset
    from lab.diffusion.cache import content_key
    from lab.metrics.classify import accuracy, outputs
    from lab.models.cnn import ConvNet
    from lab.train.config import TrainConfig
    from lab.train.loop import fit
    from lab.train.losses import ClassifierLoss

    ds = load_dataset(data, "train", limit=limit, seed=seed + 10, target=label_target)
    test = load_dataset(data, "test", limit=300, seed=seed + 20, target=label_target)
    x, styles = render_styles(ds.images, seed + 10)
    labels = ds.labels.repeat(len(styles) // len(ds))
    xt, st = render_styles(test.images, seed + 20, negatives=False)
    yt = test.labels.repeat(len(STYLES))
    nets = {}
    for name, y, k in (("style", styles, len(STYLES)), ("label", labels, len(ds.classes))):
        net = ConvNet(in_channels=ds.channels, image_size=ds.size, num_classes=k)
        key = content_key("judge-v2", data, label_target, name, seed, steps, limit, len(x))
        path = get_settings().cache_dir / "judges" / f"{key}.safetensors"
        if cache and path.exists():
            net.load_state_dict(load_file(path))
        else:
            fit(net, ClassifierLoss(augment=True), x.float().div(127.5).sub(1), y,
                TrainConfig(steps=steps, batch_size=128, lr=1e-3, warmup=20, ema_decay=None, seed=seed, device="cpu"))
            if cache:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_file({k_: v.contiguous() for k_, v in net.state_dict().items()}, path)
        nets[name] = net.eval()
    plain, in_target = st == STYLES.index("plain"), st == STYLES.index(target)
    false = {}
    for j, change in enumerate(OFF_TARGET):
        if change in COLOUR_ONLY and test.images.shape[1] != 3:
            continue
        changed = off_target(test.images, change, seed + 200 + j)
        false[change] = float((outputs(nets["style"], changed).argmax(1) == STYLES.index(target)).float().mean())
    return Judges(nets["style"], nets["label"], accuracy(nets["style"], xt, st), accuracy(nets["label"], xt, yt),
                  accuracy(nets["label"], xt[plain], yt[plain]), accuracy(nets["label"], xt[in_target], yt[in_target]),
                  false, target)

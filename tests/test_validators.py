"""The validators behind the app's bad-input messages, called directly: pixel and size limits of uploads, allowed
folders for user paths, damaged weights, numbers and prompts, safe weight loading (tests/test_bad_input.py sends
the same kinds of input through the served app)."""
from __future__ import annotations

import math
import re

import pytest
from conftest import ROOT, needs_checkpoints
from helpers.bad_files import CHECKPOINTS, LONG, NAN
from PIL import Image

from lab.errors import LabError

pytestmark = needs_checkpoints("ddpm-mnist", "cfg-mnist", "classifier-mnist", "clip-lab")  # damaged copies


def test_open_image_refuses_bombs_tiny_broken_files_and_converts_modes(bad_files):
    from lab.data.sources import MAX_IMAGE_PIXELS, image_to_tensor, open_image, to_standard_mode

    assert Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS == 40_000_000
    images = bad_files["images"]
    for name, message in [("bomb.png", "too large.*at most 40 megapixels"), ("big.png", r"too large \(7000×7000 px\)"),
                          ("tiny.png", "only 1×1 px"), ("corrupt.png", "not a readable image"),
                          ("truncated.png", "damaged, truncated or not an image")]:
        with pytest.raises(LabError, match=message):
            open_image(images / name)
    for name in ("cmyk.png", "palette.png", "grey16.png", "rgba.png", "la.png", "digit.png"):
        image = open_image(images / name)
        assert to_standard_mode(image).mode in ("L", "RGB")
        assert image_to_tensor(image, 28, "L").shape == (1, 28, 28)
    grey16 = to_standard_mode(open_image(images / "grey16.png"))
    assert grey16.getpixel((0, 0)) == round(40000 * 255 / 65535)  # scaled, not clipped to white
    assert to_standard_mode(Image.new("F", (8, 8), 0.5)).mode == "L"


def test_user_paths_must_lie_inside_the_allowed_folders(bad_files, monkeypatch, tmp_path):
    from lab.config import allowed_roots, inside_allowed
    from lab.models.store import check_model_source

    monkeypatch.delenv("LAB_MODEL_ROOTS", raising=False)
    assert CHECKPOINTS.resolve() in allowed_roots()
    for bad in ("/etc", "../../etc/passwd", str(bad_files["not_a_model"]), str(CHECKPOINTS / ".." / "lab")):
        with pytest.raises(LabError, match="outside the allowed folders.*LAB_MODEL_ROOTS"):
            inside_allowed(bad, "The model")
    link = tmp_path / "escape"
    link.symlink_to("/etc")
    monkeypatch.setenv("LAB_MODEL_ROOTS", str(tmp_path))
    with pytest.raises(LabError, match="outside the allowed folders"):
        inside_allowed(link / "passwd")  # a link inside a root that leads out of it
    assert inside_allowed(tmp_path / "anything") == (tmp_path / "anything").resolve()
    assert check_model_source("ddpm-mnist") == "ddpm-mnist"
    assert check_model_source(str(CHECKPOINTS / "ddpm-mnist")) == str(CHECKPOINTS / "ddpm-mnist")
    for bad, message in [("", "No model was given"), ("/etc", "outside"), ("../../etc/passwd", "outside"),
                         ("ddpm-mnist/../../../etc", "outside"), ("y" * 5000, "characters long"),
                         ("nope", "No model folder")]:
        with pytest.raises(LabError, match=message):
            check_model_source(bad)
    monkeypatch.setenv("LAB_MODEL_ROOTS", str(bad_files["root"]))
    assert check_model_source(str(bad_files["not_a_model"]))  # allowed now; loading it says what is missing


def test_damaged_weights_are_named(bad_files):
    from lab.models.store import damaged_weights, load_classifier, load_diffusion

    assert damaged_weights(CHECKPOINTS / "ddpm-mnist") is None
    message = damaged_weights(bad_files["truncated"] / "ddpm-mnist")
    assert "unet/diffusion_pytorch_model.safetensors is damaged" in message and "re-download" in message
    with pytest.raises(LabError, match="is damaged"):
        load_diffusion(bad_files["truncated"] / "ddpm-mnist")
    with pytest.raises(LabError, match="is damaged"):
        load_classifier(bad_files["truncated"] / "classifier-mnist")
    with pytest.raises(LabError, match="not a diffusion model folder: it needs model_index.json"):
        load_diffusion(bad_files["not_a_model"])


def test_numbers_and_prompts_are_checked():
    from lab.clip.vocab import MAX_PROMPT_CHARS, check_prompt
    from lab.ui.common import float_in, int_in

    for value in (-1, 0, 10**9, NAN, math.inf, "ten", None):
        with pytest.raises(LabError, match="Steps must be"):
            int_in(value, "Steps", 1, 1000)
    assert int_in(3.0, "Steps", 1, 1000) == 3
    for value in (NAN, float("nan"), -1, math.inf, 10**9):
        with pytest.raises(LabError, match="η must be between"):
            float_in(value, "η", 0.0, 1.0)
    with pytest.raises(LabError, match="is empty: write"):
        check_prompt("  ", None, "target text")
    with pytest.raises(LabError, match=f"keep it under {MAX_PROMPT_CHARS}"):
        check_prompt(LONG, None, "target text")


def test_number_boxes_check_api_values_before_gradio_does():
    """Sliders and number boxes answer non-numbers and out-of-range values with their own label."""
    import gradio as gr

    from lab.ui.common import _check_numbers_before_gradio

    _check_numbers_before_gradio()  # installed when lab.ui.common is imported; a second call changes nothing
    slider, number = gr.Slider(1, 1000, label="Steps"), gr.Number(label="Seed", precision=0)
    assert slider.preprocess("7") == 7 and number.preprocess(3.0) == 3 and number.preprocess(None) is None
    for component, payload, message in [(slider, "nan", "Steps must be a number between 1 and 1000, not 'nan'"),
                                        (slider, None, "Steps must be a number"), (slider, 0, "between 1 and 1000, not 0"),
                                        (slider, [1], "must be a number"), (number, float("inf"), "Seed must be a number"),
                                        (number, "abc", "Seed must be a number, not 'abc'")]:
        with pytest.raises(gr.Error, match=re.escape(message)):
            component.preprocess(payload)


def test_upload_counts_are_capped():
    from lab.data.uploads import MAX_UPLOADS, images_from_files
    from lab.ui.edit import MAX_UPLOADS as EDIT_MAX
    from lab.ui.edit import _uploads

    with pytest.raises(LabError, match=f"65 images were uploaded; edit at most {EDIT_MAX}"):
        _uploads(["digit.png"] * 65, "ddpm-mnist", False)
    with pytest.raises(LabError, match=f"give at most {MAX_UPLOADS}"):
        images_from_files(["digit.png"] * (MAX_UPLOADS + 1), 28, 1)


def test_long_messages_are_shortened():
    from lab.ui.common import shorten

    text = shorten(f"Unknown class {LONG!r}: this model knows 0, 1.")
    assert len(text) < 200 and "(10,000 characters)" in text and text.endswith("knows 0, 1.")
    assert len(shorten("a digit " * 2000)) <= 1200


def test_weights_are_loaded_only_through_safetensors_or_weights_only_torch_load():
    """No pickle: every torch.load in the engine passes weights_only=True, and nothing calls pickle.load."""
    offenders = []
    for file in sorted((ROOT / "lab").rglob("*.py")):
        text = file.read_text()
        for match in re.finditer(r"torch\.load\(", text):
            call = text[match.start(): text.find("\n\n", match.start())]
            depth, end = 0, 0
            for end, char in enumerate(call):
                depth += char == "("
                depth -= char == ")"
                if depth == 0 and char == ")":
                    break
            if "weights_only=True" not in call[: end + 1]:
                offenders.append(f"{file.relative_to(ROOT)}: {call[: end + 1]}")
        for pattern in (r"\bpickle\.loads?\(", r"\bdill\.load", r"allow_pickle\s*=\s*True", r"\bjoblib\.load\("):
            offenders += [f"{file.relative_to(ROOT)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert not offenders, offenders

"""CLIP for the lab: loading any open_clip model, the lab's own small CLIP (``checkpoints/clip-lab``),
its caption templates and vocabulary, and zero-shot evaluation."""
from lab.clip.model import ARCH, DEFAULT_CLIP, LabClip, clip_choices, load_clip, resolve_clip, save_clip_folder
from lab.clip.vocab import captions, check_prompt, vocabulary

__all__ = ["ARCH", "DEFAULT_CLIP", "LabClip", "load_clip", "resolve_clip", "save_clip_folder", "clip_choices",
           "captions", "check_prompt", "vocabulary"]

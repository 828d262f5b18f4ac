"""DiffusionCLIP editing from the terminal.

  python -m lab edit --model ddpm-mnist --source "a digit" --target "a sketch of a digit" --n 8
  python -m lab edit --model ddpm-mnist --target "a sketch of a digit" --edit-split test --edit-n 200
"""
from __future__ import annotations

import shlex
import sys

from lab.commands.registry import command, common_args


def _command_line() -> str:
    return "python -m lab " + shlex.join(sys.argv[1:])


def _edit_args(p: argparse.ArgumentParser) -> None:
    from lab.data import DATASETS, STYLES

    p.add_argument("--model", default="ddpm-mnist", help="DDPM backbone: shipped name, folder or (online) hub id")
    p.add_argument("--clip", default="clip-lab", help="CLIP: clip-lab, a folder, or an open_clip name like ViT-B-32")
    p.add_argument("--clip-pretrained", default=None, help="open_clip pretrained tag (e.g. openai) or weights file")
    p.add_argument("--source", default=None, help="source text (default: the backbone's, e.g. 'a digit')")
    p.add_argument("--target", default=None,
                   help="target text (default: the backbone's, e.g. 'a sketch of a digit', 'a pencil sketch of a face')")
    p.add_argument("--data", default=None, choices=DATASETS,
                   help="fine-tuning (and editing) images (default: the backbone's training data, else mnist)")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--style", default="plain", choices=STYLES)
    p.add_argument("--n-train", type=int, default=16, help="images to fine-tune on")
    p.add_argument("--t0", type=int, default=400)
    p.add_argument("--n-inv-step", type=int, default=40)
    p.add_argument("--n-train-step", type=int, default=6)
    p.add_argument("--n-test-step", type=int, default=40)
    p.add_argument("--lambda-clip", type=float, default=1.0)
    p.add_argument("--lambda-l1", type=float, default=0.1)
    p.add_argument("--lambda-id", type=float, default=0.5)
    p.add_argument("--lambda-struct", type=float, default=0.0,
                   help="structure loss: L1 between edge maps; keeps shapes, lets brightness/polarity change")
    p.add_argument("--identity", default="auto", choices=["auto", "digit-classifier", "none", "face-api"])
    p.add_argument("--clip-views", type=int, default=0,
                   help="average the CLIP direction over this many shifted, noisy views (0: the reference loss)")
    p.add_argument("--iterations", type=int, default=4, help="passes over the fine-tuning images")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=8, help="fine-tuning batch")
    p.add_argument("--variant", default="full", choices=["full", "eff"],
                   help="full: gradient through all generative steps; eff: one step at a time (memory saving)")
    p.add_argument("--edit-split", default="test", choices=["train", "test"])
    p.add_argument("--edit-n", type=int, default=8, help="images of --edit-split to edit after fine-tuning")
    p.add_argument("--edit-batch-size", type=int, default=64)
    p.add_argument("--image", action="append", default=None,
                   help="edit (and fine-tune on) this image file instead of dataset images; repeatable")
    p.add_argument("--fit", action="store_true", help="--image: centre-crop/resize/convert to the model's format")
    p.add_argument("--save-as", default=None, help="save the fine-tuned model as LAB_CHECKPOINT_DIR/<name>")
    p.add_argument("--with-saved", default=None, metavar="MODEL",
                   help="no fine-tuning: edit --image files (or --edit-n images of --data/--edit-split) with this "
                        "saved fine-tuned model")
    common_args(p)


@command("edit", "DiffusionCLIP: fine-tune a DDPM copy with a directional CLIP loss and edit images by text",
         _edit_args)
def _edit(args, progress) -> dict:
    import torch

    from lab.data.sources import open_image
    from lab.experiments.edit import EditConfig, backbone_defaults, check_image, run_edit
    from lab.models.store import load_diffusion
    from lab.runs import recorded

    suits = {"data": "mnist", "source": "a digit", "target": "a sketch of a digit",
             **backbone_defaults(args.with_saved or args.model)}
    for key in ("data", "source", "target"):
        if getattr(args, key) is None:
            setattr(args, key, suits[key])
    config = EditConfig(model=args.model, clip=args.clip, clip_pretrained=args.clip_pretrained, source=args.source,
                        target=args.target, data=args.data, split=args.split, style=args.style, n_train=args.n_train,
                        t0=args.t0, n_inv_step=args.n_inv_step, n_train_step=args.n_train_step,
                        n_test_step=args.n_test_step, lambda_clip=args.lambda_clip, lambda_l1=args.lambda_l1,
                        lambda_id=args.lambda_id, lambda_struct=args.lambda_struct, identity=args.identity,
                        clip_views=args.clip_views, iterations=args.iterations, lr=args.lr,
                        batch_size=args.batch_size, variant=args.variant, edit_split=args.edit_split,
                        edit_n=args.edit_n, edit_batch_size=args.edit_batch_size, save_as=args.save_as,
                        seed=args.seed, device=args.device or "auto")
    config.validate()
    uploads = None
    if args.image:
        model = load_diffusion(args.with_saved or args.model)
        uploads = torch.stack([check_image(open_image(f), model.size, model.channels, args.fit) for f in args.image])
    if args.with_saved:
        from lab.experiments.edit import edit_saved

        with recorded("edit-saved", {"model": args.with_saved, "data": args.data, "split": args.edit_split,
                                     "n": args.edit_n, "images": args.image}, command=_command_line()) as run:
            out = edit_saved(args.with_saved, args.data, args.edit_split, args.edit_n, uploads, args.seed,
                             args.edit_batch_size, args.device, progress)
            out["grid"].save(run.add("edit_grid.png"))
            torch.save({"originals": out["originals"], "edited": out["edited"]}, run.add("images.pt"))
        return {"run": str(run.dir), "grid": str(run.path("edit_grid.png")), "edited": len(out["edited"]),
                "seconds": round(out["seconds"], 2)}
    with recorded("edit", config.__dict__, command=_command_line()) as run:
        result = run_edit(config, uploads=uploads, progress=progress)
        result.save(run)
    return {"run": str(run.dir), "grid": str(run.path("edit_grid.png")), "saved_to": result.saved_to,
            **result.metrics, "notes": result.notes}

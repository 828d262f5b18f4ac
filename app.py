"""Diffusion Domain Lab — the Gradio app. It only assembles the tabs; each tab lives in lab/ui/."""
from __future__ import annotations

import os

import gradio as gr

from lab.config import get_settings
from lab.ui import common, conditional, dann, denoise, discovery, display, edit, history, ssda

TITLE = "Diffusion Domain Lab"


def build_app() -> gr.Blocks:
    """The tabs in the order of README.md's table (tests/test_browser.py checks it)."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nRun, see, measure and export the experiments of diffusion-based domain adaptation. "
                    + common.device_note())
        with gr.Tabs():
            with gr.Tab("Denoising steps", id="denoise"):
                denoise.build()
            with gr.Tab("Class-conditional sampling", id="conditional"):
                conditional.build()
            with gr.Tab("DANN stage comparison", id="dann"):
                dann.build()
            with gr.Tab("DiffusionCLIP editing", id="edit"):
                edit.build()
            with gr.Tab("Batch adaptation + CNN evaluation", id="ssda"):
                ssda.build()
            with gr.Tab("Domain discovery", id="discovery"):
                discovery.build()
            with gr.Tab("History", id="history"):
                history.build()
    return demo


MAX_FILE_SIZE = "20mb"  # per uploaded file; the server refuses larger ones (images are also capped in pixels)


def launch_kwargs() -> dict:
    """How the app is served (``main`` and the tests): uploads capped, no tracebacks shown to users, the page's
    own CSS and script."""
    return dict(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                max_file_size=MAX_FILE_SIZE, show_error=False,
                allowed_paths=[str(get_settings().runs_dir)],  # run files (exports, History) may lie outside cwd
                css=display.CSS, js=display.JS)  # figures whole, a note when a slider clamps a typed number


QUEUE = dict(default_concurrency_limit=2, max_size=64)  # jobs run at a time, requests waiting


def serve(**overrides) -> tuple[gr.Blocks, str]:
    """The app, queued and launched as ``main`` serves it; ``overrides`` replace launch settings (the tests and
    bench/load.py: a free port, ``prevent_thread_lock``). Returns the app and its local URL."""
    demo = build_app()
    demo.queue(**QUEUE)
    _, url, _ = demo.launch(**{**launch_kwargs(), **overrides})
    return demo, url


def main() -> None:
    serve()


if __name__ == "__main__":
    main()

"""Diffusion Domain Lab: the engine behind the app, the CLI and the benchmarks.

Nothing in this package imports Gradio; the app's tab modules live in ``lab.ui``
and only turn widgets into engine calls.
"""

__version__ = "0.1.0"

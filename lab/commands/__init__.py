"""CLI commands, one module per experiment; each registers itself in ``lab.commands.registry``.

Every module in this package is imported by ``lab.cli.build_parser``, so adding a command means adding a module
here, and nothing else. Modules import only configs and argparse at their top; the engine when a command runs.
"""
import importlib
import pkgutil


def load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")

"""The ``presil`` console command.

Each subcommand lives in the module that does its job; that module has a
``register(subparsers)`` function adding its parser, and sets ``func`` (the
handler, returning the exit code) as the parser default. This file only lists
the modules.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands, in the order they appear in --help.
SUBCOMMAND_MODULES: list[str] = ["presil.demo", "presil.codegen", "presil.golden.cli", "presil.host.zoo.cli", "presil.host.compiler.cli",
                                  "presil.host.cli", "presil.host.mlperf.cli", "presil.tb.cli"]


def build_parser() -> argparse.ArgumentParser:
    from presil import __version__

    parser = argparse.ArgumentParser(prog="presil", description="Pre-silicon framework for NPUs.")
    parser.add_argument("--version", action="version", version=f"presil {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

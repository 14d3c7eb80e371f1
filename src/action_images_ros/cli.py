"""The ``action-images`` command: a thin dispatcher over ``action_images_ros.commands``.

Each subcommand lives in its own module under ``commands/`` exposing
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Modules
are imported only when their subcommand runs, so ``action-images --help``
stays fast and a missing optional dependency only breaks its own command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# name -> module under action_images_ros.commands
COMMANDS = {
    "demo": "demo",
    "codec-demo": "codec_demo",
    "generate": "generate",
    "show-episode": "show_episode",
    "train": "train",
    "predict": "predict",
    "eval": "eval_policy",
    "evaluate-video": "evaluate_video",
    "run": "run_graph",
    "calibrate": "calibrate",
    "record-bag": "record_bag",
    "import-bag": "import_bag",
    "export-lerobot": "export_lerobot",
    "import-lerobot": "import_lerobot",
    "view": "view",
}


def _load(module: str):
    return importlib.import_module(f"action_images_ros.commands.{module}")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="action-images", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module in COMMANDS.items():
        if name == wanted:
            mod = _load(module)
            p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
        else:  # listed in --help without importing it
            sub.add_parser(name, help=f"see `action-images {name} --help`")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub at run time
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        # User errors: one clear line, no traceback.
        print(f"action-images {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

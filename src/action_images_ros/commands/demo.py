"""`action-images demo`: the main job on embedded defaults (`make demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import codec_demo

HELP = "run the main job on embedded defaults (currently: the action-image codec round trip)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("outputs/demo"))


def run(args: argparse.Namespace) -> int:
    return codec_demo.run(argparse.Namespace(rig=None, image_size=128, steps=8, out=args.out))

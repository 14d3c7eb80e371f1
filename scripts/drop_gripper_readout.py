"""Write a copy of a model folder without its gripper read-out (the read-out's ablation on the same weights).

    python scripts/drop_gripper_readout.py models/fourtask runs/fourtask_drawn_gripper
    action-images eval --model runs/fourtask_drawn_gripper --task place_cube --episodes 50

The copy draws and decodes exactly the same action images and poses; only each keyframe's gripper is read
from the drawn images (the B-channel background) instead of by the read-out.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="a model folder with a gripper read-out")
    p.add_argument("out", type=Path, help="folder to write the copy to")
    args = p.parse_args()
    from action_images_ros.model.factory import without_gripper_readout
    from action_images_ros.model_io import load_policy

    pipe, policy_cfg = load_policy(args.model, runtime="eager")  # the policy settings, wherever the folder keeps them
    copy = without_gripper_readout(pipe)
    copy.set_policy_config(policy_cfg)
    copy.save_pretrained(args.out)
    print(f"{args.model} without its gripper read-out: {args.out}")


if __name__ == "__main__":
    main()

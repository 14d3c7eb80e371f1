"""Write a model folder's pipeline again (weights and configuration) with another default number of denoising steps.

    python scripts/set_sampling_steps.py runs/fourtask_onestep/model 1 models/fourtask [--runtime onnxruntime]

The weights are written unchanged (``save_pretrained``; a model card or loss curve is not copied); only
``policy_config.num_inference_steps`` (what the policy node, ``eval``
and ``make demo`` use when no ``--steps`` is given) and, with ``--redraws`` and ``--runtime``,
``policy_config.redraws`` and ``policy_config.runtime`` are set. Choose them from a step table and a
closed-loop run under the runtime (model card).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from action_images_ros.config import RUNTIMES  # JSON and YAML only: no torch before the arguments are read


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="a model folder")
    p.add_argument("steps", type=int, help="default denoising steps per prediction")
    p.add_argument("out", type=Path, help="folder to write the copy to")
    p.add_argument("--redraws", type=int, default=None,
                   help="also set policy_config.redraws (further draws when a keyframe is under min_confidence)")
    p.add_argument("--runtime", default=None, choices=RUNTIMES,
                   help="also set policy_config.runtime (where the network runs by default: eager, onnxruntime, "
                        "openvino, compile)")
    args = p.parse_args()
    from action_images_ros.model_io import load_policy

    # the policy settings too, wherever the folder keeps them; eager: the weights are saved as trained
    pipe, policy_cfg = load_policy(args.model, runtime="eager")
    redraws = policy_cfg.redraws if args.redraws is None else args.redraws
    runtime = policy_cfg.runtime if args.runtime is None else args.runtime
    # range-checked as on load
    pipe.set_policy_config(dataclasses.replace(policy_cfg, num_inference_steps=args.steps, redraws=redraws,
                                               runtime=runtime))
    pipe.save_pretrained(args.out)
    print(f"{args.model} sampling {args.steps} step(s) by default, up to {redraws} redraw(s), runtime {runtime}: "
          f"{args.out}")


if __name__ == "__main__":
    main()

"""Codec accuracy and speed (issue 2 targets). Prints medians; run: python bench/bench_codec.py"""

import argparse
import time

import numpy as np

from action_images_ros.codec import ActionImageCodec
from action_images_ros.eval.codec_round_trip import random_actions, reference_rig, round_trip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--poses", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"accuracy over {args.poses} random poses, 3 views ~1 m from a 0.5x0.5x0.4 m workspace")
    for size, noise, jitter, label in [
        (128, 0.0, 0.0, "128x128 clean"),
        (128, 0.05, 0.1, "128x128 noise 0.05 + 10% jitter"),
        (64, 0.0, 0.0, "64x64 clean"),
        (64, 0.05, 0.1, "64x64 noise 0.05 + 10% jitter"),
    ]:
        codec = ActionImageCodec(size, size)
        e = round_trip(codec, reference_rig(size, size), random_actions(args.poses, rng), noise, jitter, rng).summary()
        print(
            f"  {label:34s} pos median {e['pos_median_mm']:.3f} mm p95 {e['pos_p95_mm']:.3f} mm | "
            f"rot median {e['rot_median_deg']:.3f} deg p95 {e['rot_p95_deg']:.3f} deg | "
            f"gripper {100 * e['gripper_accuracy']:.1f} % | conf median {e['confidence_median']:.3f}"
        )
    cams = reference_rig(128, 128)
    codec = ActionImageCodec(128, 128)
    actions = random_actions(16, rng)
    enc, dec = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        imgs = codec.encode(actions, cams)
        t1 = time.perf_counter()
        codec.decode(imgs, cams)
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append(t2 - t1)
    print(f"speed, 3 views x 16 steps at 128x128 (median of {args.repeats}): "
          f"encode {1e3 * np.median(enc):.2f} ms, decode {1e3 * np.median(dec):.2f} ms")


if __name__ == "__main__":
    main()

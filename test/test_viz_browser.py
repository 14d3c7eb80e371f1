"""The live view, as a person sees it: a short real graph episode (sim_node, policy_node on the shipped
model, executor_node, viz_node writing an .rrd) served by ``rerun --serve-web`` on 127.0.0.1, opened
in headless Chromium over the DevTools protocol and checked by its pixels:

* each camera's "action images" panel shows that camera's newest action images in the recording (found
  in that camera's column of the layout, correlation > 0.9; the graph stops mid-way, so the newest
  prediction may have reached the file for some cameras only), and in every keyframe's tile the red
  (position) blob peaks where the decoded keyframe of that prediction (the trajectory message) projects
  into the view (``geometry.Camera.project``), within ``TOLERANCE_PX`` model pixels;
* each camera's "action images on frame" panel shows that camera's newest published overlay;
* the 3D view is not empty: the keyframe points (coloured by confidence) and the cell are drawn.

Skips only when Chromium is missing (``make test`` installs it: Debian ``chromium``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.parameter import Parameter

from action_images_ros.geometry import load_rig
from action_images_ros.viz.browser import WebViewer, chromium_path, screenshot

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "tiny"
TOLERANCE_PX = 4.0  # model pixels (64 px images; blob sigma 3.2 px): the decoded keyframe vs the blob on screen
RENDER_TOLERANCE_PX = 1.0  # model pixels: the blob's peak on screen vs the same peak in the published image
WIDTH, HEIGHT = 1600, 1000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="no chromium on the PATH (make test installs Debian chromium)"),
    pytest.mark.skipif(not (MODEL / "model_index.json").is_file(), reason="no shipped models/tiny"),
]


def run_graph_with_view(ros_context, rrd: Path, predictions: int, timeout_s: float = 400.0):
    """The simulated graph + viz_node (in process) until ``predictions`` predictions were made; returns the
    test's own record of them: per stamp the decoded trajectory and every view's action video."""
    from sensor_msgs.msg import Image
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from action_images_ros.ros.action_video import unstack_frames
    from action_images_ros.ros.graph import GraphOptions, topic
    from action_images_ros.ros.image_conversions import msg_to_image
    from action_images_ros.ros.monitor import GraphMonitor
    from action_images_ros.ros.qos import image_qos, state_qos
    from action_images_ros.ros.runner import BackgroundSpinner, InProcessGraph
    from action_images_ros.ros.session import graph_specs
    from action_images_ros.ros.stamps import stamp_to_ns
    from action_images_ros.ros.trajectory_conversion import msg_to_trajectory

    specs, views = graph_specs(GraphOptions(model=str(MODEL), viz="rerun", viz_rrd=str(rrd)))
    monitor = GraphMonitor(views, context=ros_context, parameter_overrides=[Parameter("use_sim_time", value=True)])
    seen = {"trajectory": {}, "action_video": {}, "overlay": {}}
    monitor.create_subscription(MultiDOFJointTrajectory, topic("trajectory"), lambda m: seen["trajectory"].__setitem__(
        stamp_to_ns(m.header.stamp), msg_to_trajectory(m)), state_qos(10))
    for v in views:
        monitor.create_subscription(Image, topic("action_video", v), lambda m, v=v: seen["action_video"].__setitem__(
            (stamp_to_ns(m.header.stamp), v), unstack_frames(msg_to_image(m), m.width)), image_qos())
        monitor.create_subscription(Image, topic("overlay", v), lambda m, v=v: seen["overlay"].__setitem__(
            (stamp_to_ns(m.header.stamp), v), msg_to_image(m, "rgb8")), image_qos())
    spinner = BackgroundSpinner(ros_context)
    spinner.add(monitor)
    graph = InProcessGraph(specs, context=ros_context)
    try:
        deadline = time.monotonic() + timeout_s
        while len(monitor.predictions) < predictions and time.monotonic() < deadline and not graph.exited():
            time.sleep(0.1)
        assert not graph.exited(), graph.exited()
        assert len(monitor.predictions) >= predictions, f"{len(monitor.predictions)} predictions in {timeout_s} s"
        time.sleep(1.0)  # the last prediction's images reach the view
        viz = graph.nodes["viz_node"]
        logged = dict(viz.logged)
    finally:
        graph.shutdown()  # viz_node closes the .rrd
        spinner.close()
        monitor.destroy_node()
    return views, seen, logged


def last_logged_stamps(rrd: Path, entities: list[str]) -> dict[str, int]:
    """ROS time (ns) of the newest value of each entity in the recording (rerun's own reader)."""
    import rerun as rr

    times = {e: [] for e in entities}
    for chunk in rr.chunk.RrdReader(rrd).stream():
        if chunk.entity_path.lstrip("/") in times:
            times[chunk.entity_path.lstrip("/")] += chunk.to_record_batch().column("ros_time").to_pylist()
    assert all(times.values()), {e: len(t) for e, t in times.items()}
    return {e: max(int(round(t.total_seconds() * 1e9)) for t in ts) for e, ts in times.items()}


def find_image(screen: np.ndarray, template: np.ndarray, column: int, columns: int = 3, left_share: float = 0.4):
    """Where ``template`` is shown in the ``column``-th camera column of the layout (the right
    ``1 - left_share`` of the page, ``columns`` equal columns): among the solid regions that are not the
    panels' white background, the one that, resized to the template's size, correlates best with it.
    Returns ``(correlation, (x0, y0), scale)``: its top-left pixel and screen pixels per image pixel."""
    W = screen.shape[1]
    lo = int(W * left_share + column * W * (1 - left_share) / columns)
    hi = int(W * left_share + (column + 1) * W * (1 - left_share) / columns)
    part = screen[:, lo:hi]
    mask = (part.min(axis=2) < 200).astype(np.uint8)  # not the white panels, their grey borders or light text
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    best = (-1.0, (0, 0), 1.0)
    t = template.astype(np.float32).ravel()
    for x, y, w, h, area in stats[1:]:
        if w < 0.3 * (hi - lo) or abs(w / h - template.shape[1] / template.shape[0]) > 0.05:
            continue
        shown = cv2.resize(part[y:y + h, x:x + w], (template.shape[1], template.shape[0]),
                           interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        corr = float(np.corrcoef(shown, t)[0, 1])
        if corr > best[0]:
            best = (corr, (lo + int(x), int(y)), w / template.shape[1])
    return best


def red_peak(patch: np.ndarray) -> np.ndarray:
    """Sub-pixel ``(x, y)`` of the red channel's peak in an RGB patch (centroid of the top of the blob)."""
    r = cv2.GaussianBlur(patch[..., 0].astype(np.float32), (0, 0), 1.0)
    y, x = np.unravel_index(np.argmax(r), r.shape)
    y0, y1, x0, x1 = max(0, y - 3), min(r.shape[0], y + 4), max(0, x - 3), min(r.shape[1], x + 4)
    w = np.clip(r[y0:y1, x0:x1] - 0.5 * r.max(), 0, None)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


def test_live_view_in_a_browser_shows_action_images_where_the_keyframes_project(ros_context, tmp_path):
    from action_images_ros.viz.log import tile_frames

    rrd = tmp_path / "episode.rrd"
    views, seen, logged = run_graph_with_view(ros_context, rrd, predictions=2)
    assert logged.get("action_video", 0) >= 2 * len(views) and logged.get("trajectory", 0) >= 2, logged
    assert logged.get("image", 0) > 0 and logged.get("current_pose", 0) > 0, logged
    stamps = sorted((s for s in seen["trajectory"] if all((s, v) in seen["action_video"] for v in views)),
                    reverse=True)
    assert stamps, "no prediction seen whole"

    def template(stamp: int, view: str) -> np.ndarray:
        return tile_frames((np.clip(seen["action_video"][(stamp, view)], 0, 1) * 255 + 0.5).astype(np.uint8))

    # The viewer follows the latest time and each panel shows its entity's newest value there. The graph
    # stops mid-way, so the newest prediction may have reached the file for some views only: each camera's
    # panels then show that camera's own newest action images and overlay, not one common prediction.
    from action_images_ros.viz import paths

    newest = last_logged_stamps(rrd, [paths.action_images(v) for v in views] + [paths.overlay(v) for v in views])
    expect = {v: (newest[paths.action_images(v)], newest[paths.overlay(v)]) for v in views}
    for v, (images_at, overlay_at) in expect.items():
        assert images_at in stamps and (overlay_at, v) in seen["overlay"], (v, expect, stamps)

    def whole(im):  # every camera's newest action images, and its overlay drawn too (panels load one by one)
        return all(find_image(im, template(expect[v][0], v), i)[0] > 0.9 and find_image(
            im, seen["overlay"][(expect[v][1], v)], i)[0] > 0.9 for i, v in enumerate(views))

    with WebViewer(rrd) as viewer:  # the layout follows the latest time: wait until it shows those
        t0 = time.monotonic()
        shot = screenshot(viewer.url, width=WIDTH, height=HEIGHT, settle_s=240.0, until=whole)
        shot_s = time.monotonic() - t0
    cv2.imwrite(str(tmp_path / "view.png"), cv2.cvtColor(shot, cv2.COLOR_RGB2BGR))
    report = {"screenshot_s": round(shot_s, 1), "shown": whole(shot),
              "newest_s": {v: [round(t * 1e-9, 3) for t in expect[v]] for v in views}}
    rig = {c.name: c for c in load_rig(REPO / "config" / "cameras_sim.yaml")}

    # 1. the action-image panels: the right images, blobs where the decoded keyframes project. Two parts:
    #    on screen vs in the published image (the view's own error), published image vs the decoded
    #    keyframe (the model and decoder: the keyframe is triangulated from all views' blobs)
    errors, render, residual = [], [], []
    for v in views:
        stamp = expect[v][0]
        keyframes = seen["trajectory"][stamp].poses[1:]  # point 0 is the state it started from
        F, S = seen["action_video"][(stamp, v)].shape[:2]  # (F, S, S, 3) in [0, 1]
        score, (x0, y0), scale = find_image(shot, template(stamp, v), views.index(v))
        assert score > 0.9, f"{v}: action images not found in the screenshot (correlation {score:.2f}; {tmp_path})"
        cam = rig[v].scaled(S, S)
        uv, _, in_front = cam.project(keyframes[:, :3])
        cols = int(np.ceil(np.sqrt(F)))
        for k in range(F):
            r, c = divmod(k, cols)
            if not (in_front[k] and cam.in_image(uv[k], margin=3)):
                continue
            cell = shot[round(y0 + r * S * scale):round(y0 + (r + 1) * S * scale),
                        round(x0 + c * S * scale):round(x0 + (c + 1) * S * scale)]
            peak = (red_peak(cell) + 0.5) / scale - 0.5  # screen pixels -> model pixels of the tile
            data = red_peak((np.clip(seen["action_video"][(stamp, v)][k], 0, 1) * 255).astype(np.uint8))
            errors.append(float(np.linalg.norm(peak - uv[k])))
            render.append(float(np.linalg.norm(peak - data)))
            residual.append(float(np.linalg.norm(data - uv[k])))
        report[f"{v}_match"] = round(score, 3)
    np.savez(tmp_path / "seen.npz", **{v: seen["action_video"][(expect[v][0], v)] for v in views})
    assert len(errors) >= 2 * len(views), f"too few keyframes inside the views: {len(errors)}"
    for name, values in (("screen_vs_keyframe_px", errors), ("screen_vs_image_px", render),
                         ("image_vs_keyframe_px", residual)):
        report[name] = {"median": round(float(np.median(values)), 2), "max": round(max(values), 2), "n": len(values)}
    assert max(render) <= RENDER_TOLERANCE_PX and max(errors) <= TOLERANCE_PX, json.dumps(report)

    # 2. the overlay panels show each camera's newest published overlay
    for v in views:
        score, _, _ = find_image(shot, seen["overlay"][(expect[v][1], v)], views.index(v))
        report[f"{v}_overlay_match"] = round(score, 3)
        assert score > 0.9, json.dumps(report)

    # 3. the 3D view (left 2/5 of the page, above the time series) is not empty: confidence-coloured
    #    keyframe points and the beige table are drawn, not just the grid
    scene = cv2.cvtColor(shot[60:int(0.6 * HEIGHT), : int(0.38 * WIDTH)], cv2.COLOR_RGB2HSV)
    saturated = (scene[..., 1] > 120) & (scene[..., 2] > 120)  # frames in the frustums, axes, keyframe points
    h, sat, val = (scene[..., i].astype(int) for i in range(3))
    table = (np.abs(h - 13) < 6) & (sat > 6) & (sat < 40) & (val > 150)  # the URDF's table (beige)
    report["scene_saturated_px"], report["scene_table_share"] = int(saturated.sum()), round(float(table.mean()), 3)
    print(report)
    assert saturated.sum() >= 100 and table.mean() > 0.05, report

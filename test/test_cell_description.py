"""The shipped URDF must carry exactly the calibrated camera frames of the rig YAML."""

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from action_images_ros.cell_description import optical_frame_id, rig_to_urdf
from action_images_ros.geometry import load_rig, rig_frame_id

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_urdf_matches_rig():
    rig_path = ROOT / "config" / "cameras_sim.yaml"
    cams = load_rig(rig_path)
    shipped = (ROOT / "urdf" / "cell.urdf").read_text()
    assert shipped == rig_to_urdf(cams, rig_frame_id(rig_path)), "regenerate urdf/cell.urdf from the rig YAML"


def test_urdf_joint_origins_reproduce_extrinsics():
    cams = load_rig(ROOT / "config" / "cameras_sim.yaml")
    root = ET.fromstring(rig_to_urdf(cams))
    joints = {j.find("child").get("link"): j for j in root.iter("joint")}
    for cam in cams:
        origin = joints[optical_frame_id(cam.name)].find("origin")
        xyz = np.array(origin.get("xyz").split(), float)
        rpy = np.array(origin.get("rpy").split(), float)
        np.testing.assert_allclose(xyz, cam.T_world_cam[:3, 3], atol=1e-5)
        np.testing.assert_allclose(Rotation.from_euler("xyz", rpy).as_matrix(), cam.T_world_cam[:3, :3], atol=1e-5)

"""Action Images on ROS 2: video-generation policies for a robot arm."""

__version__ = "0.1.0"

"""Stand-in for moveit_msgs (test only)."""

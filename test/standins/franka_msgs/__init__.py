"""Stand-in for franka_msgs (test only)."""

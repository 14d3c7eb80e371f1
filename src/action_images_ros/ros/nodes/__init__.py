"""The ROS 2 nodes of the stack, one per file (each a thin shell around the ROS-free core)."""

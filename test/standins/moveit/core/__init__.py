"""Stand-in ``moveit.core`` (test only)."""

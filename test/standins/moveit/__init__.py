"""Stand-in for moveit_py's ``moveit`` package (test only); see planning.py."""

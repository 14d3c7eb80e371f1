"""The viewer: predictions, episodes, eval runs and bags as Rerun recordings (no ROS here).

One function per source turns data into ``rr.log`` calls (``log.py`` for a prediction's pieces,
``sources.py`` for an episode, an eval folder, a bag, a LeRobot export), one entity path per
camera and per signal (``paths.py``), a default layout (``blueprint.py``). Where the data goes
(a file, a viewer, a served web viewer) is the caller's choice (``recording.py``). The live view
is ``ros/nodes/viz_node.py``; the command is ``action-images view``; ``docs/viewer.md`` is the
user's guide. Importing this package imports rerun-sdk: only code that visualises does.
"""

"""Episode dataset: on-disk episodes (HDF5, see ``FORMAT.md``), recording, training clips, splits.

* :mod:`.episode` -- :class:`Episode`, :func:`write_episode`, :func:`load_episode`,
  :func:`list_episodes`, :class:`EpisodeFormatError`.
* :mod:`.record` -- run a simulated task's scripted expert and write episodes.
* :mod:`.clips` -- :class:`ActionClipDataset` / :class:`ClipConfig` (torch).
* :mod:`.split` -- deterministic train / held-out split by episode index.
* :mod:`.preview` -- views side by side with action-image overlays, written to .mp4 / .gif.

Importing this package does not import torch or the simulation; import
:mod:`.clips` / :mod:`.record` for those.
"""

from .episode import (
    FORMAT_VERSION,
    Episode,
    EpisodeFormatError,
    EpisodeInfo,
    episode_filename,
    list_episodes,
    load_episode,
    read_episode_info,
    resolve_episode_paths,
    write_episode,
)
from .split import split_episodes

__all__ = [
    "FORMAT_VERSION",
    "Episode",
    "EpisodeFormatError",
    "EpisodeInfo",
    "episode_filename",
    "list_episodes",
    "load_episode",
    "read_episode_info",
    "resolve_episode_paths",
    "split_episodes",
    "write_episode",
]

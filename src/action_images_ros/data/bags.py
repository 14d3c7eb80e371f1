"""rosbag2 bags in MCAP storage, written and read without ROS (the ``rosbags`` package).

Why ``rosbags`` + MCAP:

* ``rosbags`` (pure Python, Apache-2.0) writes and reads rosbag2 directories (``metadata.yaml`` +
  storage file) with its own message definitions (a *typestore*), so bags are made and imported in
  a venv with no ROS install, and the recorder can store the DDS bytes it receives as they are.
* MCAP storage (not sqlite3): a chunked append-only file (chunks of ~1 MB, each written whole),
  so a crash loses at most the chunk in flight: the complete chunks of an unfinished file stay
  readable (checked: mcap's ``StreamReader`` read all 20 images of a 640x480 file whose writer was
  killed before closing it; ``mcap recover`` rewrites such a file with an index), and no database
  journal is involved. ``ros2 bag info/play`` on a real install reads it with the
  ``rosbag2_storage_mcap`` plugin (the default storage since Iron; the metadata is rosbag2 version
  9, rosbags' newest: not tried against a real ``ros2 bag`` here, which has no ROS install), and
  the independent ``mcap`` Python reader (``mcap-ros2-support``) reads it too — the recorder test
  uses it as a second reader.

A bag here is one directory ``<name>/`` holding ``<name>.mcap`` and ``metadata.yaml``; ours add
``labels.json`` (the success label of each episode, :func:`write_label`), which ``ros2 bag``
ignores. :class:`BagWriter` writes under ``<parent>/.incomplete/<name>/`` and renames the
directory into place only when the bag is closed, so a directory of finished bags never holds a
half-written one.

Message definitions: the ROS 2 Kilted typestore of ``rosbags`` (the distribution of our PyPI
wheels); the recorded types' RIHS01 type hashes are the same in its Jazzy typestore.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

logger = logging.getLogger(__name__)

__all__ = ["BagError", "MESSAGE_TYPES", "make_typestore", "header_stamp_ns", "image_layout", "bag_qos", "BagWriter",
           "BagReader",
           "LABELS_FILE", "INCOMPLETE_DIR", "write_label", "read_labels", "list_bags"]

#: the message types we record (``ros2 interface`` names as rosbag2 stores them)
MESSAGE_TYPES = (
    "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/JointState",
    "geometry_msgs/msg/PoseStamped", "std_msgs/msg/String", "std_msgs/msg/Header", "std_msgs/msg/Float32",
    "trajectory_msgs/msg/MultiDOFJointTrajectory",
)
#: types whose first field is a ``std_msgs/Header`` (or which are one): their stamp is in the first CDR bytes
STAMPED_TYPES = frozenset(MESSAGE_TYPES) - {"std_msgs/msg/String", "std_msgs/msg/Float32"}
LABELS_FILE = "labels.json"
INCOMPLETE_DIR = ".incomplete"
_STORE = Stores.ROS2_KILTED
_UNSET = QosTime(0, 0)  # rmw "unspecified": the middleware's default (infinite deadline / lifespan)


class BagError(ValueError):
    """A bag that cannot be written or read as expected (the message names the bag and the problem)."""


def make_typestore() -> Typestore:
    """The typestore of the recorded message types (ROS 2 Kilted definitions)."""
    return get_typestore(_STORE)


def header_stamp_ns(cdr: bytes | memoryview) -> int:
    """``header.stamp`` in ns of a serialized message whose first field is a Header (see ``STAMPED_TYPES``).

    CDR layout: 4 bytes encapsulation (``00 01`` little endian, ``00 00`` big endian), then
    ``builtin_interfaces/Time`` = int32 sec, uint32 nanosec; read without deserializing the rest
    (an image is ~1 MB). Raises :class:`BagError` on a buffer too short or of unknown encapsulation.
    """
    if len(cdr) < 12:
        raise BagError(f"serialized message of {len(cdr)} bytes is too short to hold a header stamp")
    kind = bytes(cdr[0:2])
    if kind not in (b"\x00\x00", b"\x00\x01"):
        raise BagError(f"unknown CDR encapsulation {kind.hex()} (expected 0000 or 0001)")
    sec, nanosec = struct.unpack_from("<iI" if kind == b"\x00\x01" else ">iI", cdr, 4)
    return int(sec) * 1_000_000_000 + int(nanosec)


def image_layout(cdr: bytes | memoryview) -> tuple[int, int, str]:
    """``(height, width, encoding)`` of a serialized ``sensor_msgs/Image``, read from its first bytes.

    CDR after the 4-byte encapsulation: stamp (8 bytes), ``frame_id`` (uint32 length incl. the NUL,
    then the bytes), padding to 4, ``height``, ``width`` (uint32), ``encoding`` (string as above).
    """
    try:
        order = "<" if bytes(cdr[0:2]) == b"\x00\x01" else ">"
        off = 4 + 8
        (n,) = struct.unpack_from(order + "I", cdr, off)
        off += 4 + n
        off += (-(off - 4)) % 4
        height, width, n = struct.unpack_from(order + "III", cdr, off)
        off += 12
        encoding = bytes(cdr[off:off + n]).rstrip(b"\x00").decode("utf-8")
    except (struct.error, UnicodeDecodeError) as exc:
        raise BagError(f"not a serialized sensor_msgs/Image ({exc})") from exc
    return int(height), int(width), encoding


def bag_qos(depth: int = 10, latched: bool = False) -> Qos:
    """The offered QoS stored with a topic (``ros2 bag play`` re-offers it): reliable, keep last
    ``depth``, transient local when ``latched`` (the episode marks, the instruction)."""
    return Qos(history=QosHistory.KEEP_LAST, depth=int(depth), reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
               deadline=_UNSET, lifespan=_UNSET, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=_UNSET, avoid_ros_namespace_conventions=False)


class BagWriter:
    """One rosbag2 bag (MCAP storage) being written; see the module docstring for the directory layout.

    Args:
        path: the finished bag's directory (must not exist); written first under
            ``<path.parent>/.incomplete/<path.name>`` and renamed to ``path`` by :meth:`close`.
        topics: ``{topic: (message type, Qos)}``: every topic gets a connection at once, so a topic
            that got no message still shows in the bag's metadata with count 0.
        typestore: message definitions (default :func:`make_typestore`).

    Not thread-safe: one thread writes.
    """

    def __init__(self, path: str | Path, topics: dict[str, tuple[str, Qos]], typestore: Typestore | None = None):
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists already; a bag is never overwritten")
        self.staging = self.path.parent / INCOMPLETE_DIR / self.path.name
        self.staging.parent.mkdir(parents=True, exist_ok=True)
        if self.staging.exists():  # left by a crash of an earlier recorder with the same name
            raise BagError(f"{self.staging} exists (an interrupted recording?); move it away first")
        self.typestore = typestore or make_typestore()
        self._writer = Writer(self.staging, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections = {}
        self.counts: dict[str, int] = {}
        self.bytes_written = 0
        for topic, (msgtype, qos) in topics.items():
            self._add(topic, msgtype, qos)
        self.closed = False

    def _add(self, topic: str, msgtype: str, qos: Qos) -> None:
        if msgtype not in self.typestore.types:
            raise BagError(f"topic {topic!r}: message type {msgtype!r} is not in the typestore")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore,
                                                               offered_qos_profiles=[qos])
        self.counts[topic] = 0

    @property
    def topics(self) -> dict[str, str]:
        """``{topic: message type}``."""
        return {t: c.msgtype for t, c in self._connections.items()}

    def write(self, topic: str, log_time_ns: int, data: bytes | memoryview) -> None:
        """Append one serialized (CDR) message of a declared topic at ``log_time_ns``."""
        conn = self._connections.get(topic)
        if conn is None:
            raise BagError(f"{self.path}: topic {topic!r} was not declared; declared: {sorted(self._connections)}")
        self._writer.write(conn, int(log_time_ns), data)
        self.counts[topic] += 1
        self.bytes_written += len(data)

    def write_message(self, topic: str, log_time_ns: int, msg: Any) -> None:
        """Serialize a typestore message object and :meth:`write` it."""
        conn = self._connections.get(topic)
        if conn is None:
            raise BagError(f"{self.path}: topic {topic!r} was not declared; declared: {sorted(self._connections)}")
        self.write(topic, log_time_ns, self.typestore.serialize_cdr(msg, conn.msgtype))

    def set_custom_data(self, key: str, value: str) -> None:
        """A ``custom_data`` entry of ``metadata.yaml`` (string values; JSON for anything else)."""
        self._writer.set_custom_data(key, str(value))

    def close(self) -> Path:
        """Write the index and ``metadata.yaml``, then rename the bag into place; returns its path."""
        if self.closed:
            return self.path
        self._writer.close()
        self.closed = True
        os.replace(self.staging, self.path)  # same file system: atomic
        return self.path

    def abort(self) -> None:
        """Stop writing without finishing the bag (it stays under ``.incomplete/``)."""
        if not self.closed:
            self._writer.abort()
            self.closed = True


class BagReader:
    """Reads one rosbag2 bag (sqlite3 or MCAP storage; ``with BagReader(path) as bag: ...``).

    Attributes after opening: ``topics`` (``{topic: message type}``), ``counts`` (messages per
    topic from the metadata), ``custom_data`` (``metadata.yaml``'s, ``{}`` if none).
    """

    def __init__(self, path: str | Path, typestore: Typestore | None = None) -> None:
        self.path = Path(path)
        self.typestore = typestore or make_typestore()
        self._reader: Reader | None = None

    def __enter__(self) -> "BagReader":
        if not self.path.is_dir():
            raise FileNotFoundError(f"bag directory not found: {self.path}")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except FileNotFoundError as exc:
            raise BagError(f"{self.path}: not a finished rosbag2 bag (no metadata.yaml: still being recorded, "
                           f"or the recorder crashed; `mcap recover` can restore the chunks written)") from exc
        except ReaderError as exc:
            raise BagError(f"{self.path}: unreadable bag ({exc})") from exc
        self._by_topic = {}
        for c in self._reader.connections:
            self._by_topic.setdefault(c.topic, []).append(c)
        self.topics = {t: cs[0].msgtype for t, cs in self._by_topic.items()}
        self.counts = {t: sum(c.msgcount for c in cs) for t, cs in self._by_topic.items()}
        # read from metadata.yaml directly: rosbags keeps it on a private storage object
        info = yaml.safe_load((self.path / "metadata.yaml").read_text()).get("rosbag2_bagfile_information", {})
        self.custom_data = {str(k): str(v) for k, v in (info.get("custom_data") or {}).items()}
        return self

    def __exit__(self, *exc) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def raw_messages(self, topics: Iterable[str]) -> Iterator[tuple[str, int, bytes]]:
        """``(topic, log time ns, CDR bytes)`` of ``topics`` (all must be in the bag), in log-time order."""
        conns = []
        for t in topics:
            if t not in self._by_topic:
                raise BagError(f"{self.path}: no topic {t!r} in the bag; it has {sorted(self._by_topic)}")
            conns.extend(self._by_topic[t])
        if not conns:
            return
        try:
            for conn, log_ns, data in self._reader.messages(connections=conns):
                yield conn.topic, int(log_ns), data
        except ReaderError as exc:
            raise BagError(f"{self.path}: cannot read messages ({exc})") from exc

    def deserialize(self, topic: str, data: bytes) -> Any:
        """The typestore message object of one serialized message of ``topic``."""
        try:
            return self.typestore.deserialize_cdr(data, self.topics[topic])
        except Exception as exc:  # rosbags raises several types for a corrupt buffer
            raise BagError(f"{self.path}: cannot deserialize a {self.topics[topic]} message of {topic!r} ({exc})"
                           ) from exc


def write_label(bag_dir: str | Path, episode: int, success: bool) -> Path:
    """Set episode ``episode``'s success label in ``<bag_dir>/labels.json`` (written atomically)."""
    path = Path(bag_dir) / LABELS_FILE
    labels = read_labels(bag_dir)
    labels[int(episode)] = bool(success)
    tmp = path.with_name(f".{LABELS_FILE}.tmp")
    tmp.write_text(json.dumps({"success": {str(k): v for k, v in sorted(labels.items())}}, indent=1))
    os.replace(tmp, path)
    return path


def read_labels(bag_dir: str | Path) -> dict[int, bool]:
    """``{episode: success}`` from ``<bag_dir>/labels.json`` (``{}`` when there is none)."""
    path = Path(bag_dir) / LABELS_FILE
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())["success"]
        return {int(k): bool(v) for k, v in raw.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BagError(f"{path}: malformed labels file ({exc}); expected {{\"success\": {{\"<episode>\": true}}}}"
                       ) from exc


def list_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Expand bag directories and directories of bags (finished ones: with ``metadata.yaml``) into a sorted list.

    Raises ``FileNotFoundError`` for a missing path and :class:`BagError` for a directory that is
    neither a bag nor holds one.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such bag or directory: {p}")
        if (p / "metadata.yaml").is_file():
            out.append(p)
            continue
        found = sorted(d for d in p.iterdir() if d.is_dir() and (d / "metadata.yaml").is_file()) if p.is_dir() else []
        if not found:
            hint = " (unfinished bags are under .incomplete/)" if (p / INCOMPLETE_DIR).is_dir() else ""
            raise BagError(f"{p} is not a rosbag2 bag (no metadata.yaml) and holds none{hint}")
        out.extend(found)
    return out

"""rosbag2 files without ROS: our message types for ``rosbags``, a reader that accounts for
every message, a writer, and conversions between bag messages and the core's arrays.

Bags hold CDR like a live recording, so ``ros2 bag play`` replays them on a real ROS 2
install. Custom types (FaceMotion, audio_common_msgs) are registered from the package's own
.msg files, never from a second copy of their definitions.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core import messages
from ..core.imaging import encode_compressed, parse_compressed_format
from ..core.motion import MotionSpace
from ..core.paths import PACKAGE, SOURCE_ROOT, share_candidates

FACE_MOTION = "avatar_forcing_ros/msg/FaceMotion"
AUDIO_DATA = "audio_common_msgs/msg/AudioData"
AUDIO_STAMPED = "audio_common_msgs/msg/AudioDataStamped"
AUDIO_INFO = "audio_common_msgs/msg/AudioInfo"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
EXPRESSION = "hri_msgs/msg/Expression"
POINT_STAMPED = "geometry_msgs/msg/PointStamped"

# The pipeline's topics (relative names in the nodes; absolute at the root namespace in bags).
TOPICS = {
    "camera": ("/camera/image_raw", IMAGE),
    "camera_compressed": ("/camera/image_raw/compressed", COMPRESSED_IMAGE),
    "user_audio": ("/user/audio", AUDIO_STAMPED),
    "user_audio_info": ("/user/audio_info", AUDIO_INFO),
    "speech": ("/avatar/speech", AUDIO_STAMPED),
    "speech_info": ("/avatar/speech_info", AUDIO_INFO),
    "user_motion": ("/user/face_motion", FACE_MOTION),
    "avatar_motion": ("/avatar/face_motion", FACE_MOTION),
    "avatar_audio": ("/avatar/audio", AUDIO_STAMPED),
    "avatar_audio_info": ("/avatar/audio_info", AUDIO_INFO),
    "avatar_image": ("/avatar/image", IMAGE),
    "avatar_image_compressed": ("/avatar/image/compressed", COMPRESSED_IMAGE),
    "diagnostics": ("/diagnostics", DIAGNOSTICS),
}
STORAGES = ("mcap", "sqlite3")
# Commands to the face (core/face_commands.py), replayed where a bag has them.
COMMAND_TOPICS = {
    "expression": ("/robot_face/expression", EXPRESSION),
    "look_at": ("/robot_face/look_at", POINT_STAMPED),
}


def pipeline_topics(namespace: str = "", remaps: dict | None = None) -> list[str]:
    """Absolute names of the topics a recording of the pipeline holds (the recorder's default
    set), under ``namespace``, with ``remaps`` {stream key (as in TOPICS): name}. A relative
    remapped name is resolved in the namespace, as the nodes resolve it."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    remaps = dict(remaps or {})
    for key, base in (("camera_compressed", "camera"), ("avatar_image_compressed", "avatar_image")):
        if base in remaps and key not in remaps:  # image_transport: <image topic>/compressed
            remaps[key] = remaps[base].rstrip("/") + "/compressed"
    out = []
    for key, (name, _) in TOPICS.items():
        if key == "diagnostics":  # absolute in every node
            out.append(remaps.get(key, name))
            continue
        name = remaps.get(key, name.lstrip("/"))
        out.append(name if name.startswith("/") else f"{ns}/{name}")
    return out


def rosbag2_available(storage: str = "mcap") -> bool:
    """Whether ``ros2 bag record`` can write ``storage`` here: the ros2 CLI, its bag verb and
    the storage plugin (rosbag2_storage_mcap / rosbag2_storage_sqlite3) are installed."""
    import importlib.util
    import shutil

    if storage not in STORAGES or shutil.which("ros2") is None or importlib.util.find_spec("ros2bag") is None:
        return False
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        return False
    try:
        get_package_prefix(f"rosbag2_storage_{storage}")
    except PackageNotFoundError:
        return False
    return True


def ros2_bag_record_command(topics, out: str = "", storage: str = "mcap") -> list[str]:
    """``ros2 bag record`` of ``topics`` (absolute names) as a launch file or script runs it
    (Jazzy/Kilted CLI): it adapts its QoS to the publishers and stores their offers itself."""
    if storage not in STORAGES:
        raise BagError(f"storage must be one of {STORAGES}, not {storage!r}")
    cmd = ["ros2", "bag", "record", "--storage", storage, "--disable-keyboard-controls"]
    if out:
        cmd += ["--output", str(out)]
    return cmd + ["--topics", *topics]


class BagError(RuntimeError):
    """A bag cannot be opened or written (missing, not a bag, unreadable metadata)."""


def topic(key: str, namespace: str = "") -> str:
    """Absolute topic name of one of the pipeline's topics (or COMMAND_TOPICS) under ``namespace``."""
    name = (TOPICS.get(key) or COMMAND_TOPICS[key])[0]
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return ns + name


# -- types -------------------------------------------------------------------------------------

def _msg_dirs() -> list[tuple[str, Path]]:
    """(package, msg dir) of our custom types: the source tree first, then ROS installs."""
    dirs = [("audio_common_msgs", SOURCE_ROOT / "third_party" / "audio_common_msgs" / "msg")]
    for pkg in (PACKAGE, "audio_common_msgs"):
        dirs += [(pkg, d) for d in share_candidates("msg", package=pkg)]
    return dirs


def _custom_type_texts() -> dict[str, str]:
    found: dict[str, str] = {}
    for pkg, d in _msg_dirs():
        for f in sorted(d.glob("*.msg")) if d.is_dir() else ():
            found.setdefault(f"{pkg}/msg/{f.stem}", f.read_text())
    missing = [t for t in (FACE_MOTION, AUDIO_DATA, AUDIO_STAMPED, AUDIO_INFO) if t not in found]
    if missing:
        raise BagError(f"message definitions not found for {', '.join(missing)}; looked in "
                       + ", ".join(str(d) for _, d in _msg_dirs()))
    return found


_TYPESTORE = None


def typestore():
    """ROS 2 Kilted's standard types plus FaceMotion and audio_common_msgs."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        store = get_typestore(Stores.ROS2_KILTED)
        types = {}
        texts = _custom_type_texts()
        # AudioData first: AudioDataStamped refers to it
        for name in sorted(texts, key=lambda n: (n != AUDIO_DATA, n)):
            types.update(get_types_from_msg(texts[name], name))
        store.register(types)
        _register_optional_types(store, get_types_from_msg)
        _TYPESTORE = store
    return _TYPESTORE


def _register_optional_types(store, parse) -> None:
    """ROS4HRI's hri_msgs where it is installed (a bag recorded by rosbag2 carries its own
    definitions: see ``_learn_types_from_bag``)."""
    for d in share_candidates("msg", package="hri_msgs"):
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.msg")):
            try:
                store.register(parse(f.read_text(), f"hri_msgs/msg/{f.stem}"))
            except Exception:  # a definition this rosbags cannot parse: that type stays unknown
                continue
        return


# -- writing -----------------------------------------------------------------------------------

class BagWriter:
    """A rosbag2 being written; topics are added on first write with their type.

    ``storage``: "mcap" (default, what ``ros2 bag record`` writes on Jazzy/Kilted) or "sqlite3".
    """

    def __init__(self, path: str | Path, storage: str = "mcap"):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"storage must be one of {STORAGES}, not {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists: rosbag2 writes a new directory; remove it or pick another name")
        self.store = typestore()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        # Version 8 metadata: read by rosbag2 on Jazzy and Kilted.
        self._writer = Writer(self.path, version=8, storage_plugin=plugin)
        self._writer.open()
        self._connections = {}
        self.counts: Counter = Counter()

    def connect(self, topic_name: str, msgtype: str, offered_qos=None):
        """The topic's connection, added on first use with the publishers' ``offered_qos``
        (``offered_qos`` profiles; ``ros2 bag play`` offers them again, so latched stays latched).
        None: what the package's nodes offer if it is one of their outputs, else nothing."""
        conn = self._connections.get(topic_name)
        if conn is None:
            if msgtype not in self.store.types:
                raise BagError(f"unknown message type {msgtype!r} for {topic_name}")
            if offered_qos is None:
                offered_qos = node_offer(topic_name)
            conn = self._writer.add_connection(topic_name, msgtype, typestore=self.store,
                                               offered_qos_profiles=list(offered_qos))
            self._connections[topic_name] = conn
        elif conn.msgtype != msgtype:
            raise BagError(f"{topic_name} already has type {conn.msgtype}, not {msgtype}")
        return conn

    def write(self, topic_name: str, t_ns: int, msg, offered_qos=None) -> None:
        """Serialize a typestore message and write it at log time ``t_ns``."""
        conn = self.connect(topic_name, msg.__msgtype__, offered_qos)
        self._writer.write(conn, int(t_ns), self.store.serialize_cdr(msg, msg.__msgtype__))
        self.counts[topic_name] += 1

    def write_raw(self, topic_name: str, msgtype: str, t_ns: int, data: bytes, offered_qos=None) -> None:
        """Write an already serialized (CDR) message, as a live recorder receives it.
        ``offered_qos`` is used for the topic's first message only (see ``connect``)."""
        self._writer.write(self.connect(topic_name, msgtype, offered_qos), int(t_ns), data)
        self.counts[topic_name] += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _qos_time(ns: int):
    from rosbags.interfaces import QosTime

    ns = int(ns)
    return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)


def offered_qos(reliability: int, durability: int, history: int = 3, depth: int = 0,
                deadline_ns: int = 0, lifespan_ns: int = 0, liveliness: int = 0,
                liveliness_lease_ns: int = 0, avoid_ros_namespace_conventions: bool = False):
    """One publisher's offered QoS for a bag's metadata, from rmw's policy numbers (rclpy's
    enums have the same values: reliability 1 reliable / 2 best effort, durability 1
    transient local / 2 volatile, history 1 keep last / 2 keep all / 3 unknown). Times in ns;
    infinite is 2**63 - 1 ns, which the metadata writes as rosbag2 does (9223372036 s 854775807 ns).
    DDS discovery does not carry history and depth: a publisher seen on the graph offers
    history 3 (unknown), depth 0, as ``ros2 bag record`` also stores them."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability

    return Qos(QosHistory(int(history)), int(depth), QosReliability(int(reliability)),
               QosDurability(int(durability)), _qos_time(deadline_ns), _qos_time(lifespan_ns),
               QosLiveliness(int(liveliness)), _qos_time(liveliness_lease_ns),
               bool(avoid_ros_namespace_conventions))


INFINITE_NS = 2**63 - 1
# What the package's nodes offer on their outputs (ros/common.py qos(): reliable, keep last;
# the audio info latched), for bags written offline (replay) as if recorded from the nodes.
_NODE_OFFERS = {"user_motion": (1, 2, 10), "avatar_motion": (1, 2, 10), "avatar_audio": (1, 2, 10),
                "avatar_audio_info": (1, 1, 1), "avatar_image": (1, 2, 2), "avatar_image_compressed": (1, 2, 2)}


def node_offer(topic_name: str) -> list:
    """[the offered QoS] of a pipeline output topic (under any namespace) as the nodes publish
    it, or [] for other topics (inputs: their drivers' offers are not known here)."""
    for key, (reliability, durability, depth) in _NODE_OFFERS.items():
        if topic_name.endswith(TOPICS[key][0]):
            return [offered_qos(reliability, durability, 1, depth, INFINITE_NS, INFINITE_NS, 1, INFINITE_NS)]
    return []


def bag_offered_qos(path: str | Path) -> dict[str, list[dict]]:
    """{topic: [offered profile as a dict of policy names, lower case]} of a readable bag."""
    from rosbags.rosbag2 import Reader

    out: dict[str, list[dict]] = {}
    with Reader(path) as r:
        for c in r.connections:
            out[c.topic] = [{"history": q.history.name.lower(), "depth": q.depth,
                             "reliability": q.reliability.name.lower(),
                             "durability": q.durability.name.lower()}
                            for q in getattr(c.ext, "offered_qos_profiles", ())]
    return out


# -- reading -----------------------------------------------------------------------------------

@dataclass
class BagMessage:
    topic: str
    msgtype: str
    t_ns: int      # log (receive) time
    msg: object    # deserialized typestore message


@dataclass
class BagAccount:
    """What happened to every message of a bag: used per topic, or skipped with a reason."""
    path: str = ""
    topics: dict = field(default_factory=dict)        # topic -> msgtype
    in_bag: Counter = field(default_factory=Counter)   # topic -> messages the metadata announces
    read: Counter = field(default_factory=Counter)     # topic -> messages read
    used: Counter = field(default_factory=Counter)     # topic -> messages used
    skipped: dict = field(default_factory=lambda: defaultdict(Counter))  # topic -> reason -> n
    problems: list = field(default_factory=list)       # file-level: truncation, ...
    start_ns: int | None = None
    end_ns: int | None = None
    # The file is cut off or damaged: some of its messages could not be read.
    damaged: bool = False
    # Where ``in_bag`` comes from: "bag index" (complete bag), "mcap summary", "metadata.yaml",
    # or "" when nothing says how many messages the bag held (then lost counts are unknown).
    announced_by: str = "bag index"

    def skip(self, topic_name: str, reason: str, n: int = 1) -> None:
        self.skipped[topic_name][reason] += n

    def use(self, topic_name: str, n: int = 1) -> None:
        self.used[topic_name] += n

    @property
    def duration_s(self) -> float:
        if self.start_ns is None:
            return 0.0
        return (self.end_ns - self.start_ns) / 1e9

    def unaccounted(self) -> dict[str, int]:
        """Topics whose read messages were neither used nor skipped (should be empty)."""
        out = {}
        for t, n in self.read.items():
            left = n - self.used[t] - sum(self.skipped[t].values())
            if left:
                out[t] = left
        return out

    @property
    def counts_known(self) -> bool:
        return bool(self.announced_by)

    def lost_in_file(self) -> dict[str, int]:
        """Messages the metadata announces that could not be read (truncated file); {} when the
        announced counts are unknown (see ``lost``)."""
        return {t: n - self.read[t] for t, n in self.in_bag.items() if n > self.read[t]}

    def lost(self) -> dict:
        """Per topic: announced minus read, or "unknown" for a damaged bag with no counts."""
        names = sorted(set(self.topics) | set(self.read) | set(self.in_bag))
        if not self.counts_known:
            return {t: "unknown" for t in names} if self.damaged else {}
        return {t: max(self.in_bag[t] - self.read[t], 0) for t in names}

    def as_dict(self) -> dict:
        known = self.counts_known
        lost = self.lost()
        return {"path": self.path, "duration_s": round(self.duration_s, 3),
                "damaged": self.damaged, "announced_by": self.announced_by or "unknown",
                "topics": {t: {"type": self.topics.get(t, "?"),
                               "in_bag": self.in_bag.get(t, 0) if known else "unknown",
                               "read": self.read[t], "lost": lost.get(t, 0), "used": self.used[t],
                               "skipped": dict(self.skipped[t])}
                           for t in sorted(set(self.topics) | set(self.read) | set(self.skipped)
                                           | set(self.in_bag))},
                "problems": list(self.problems)}

    def summary(self) -> str:
        lines = [f"bag {self.path}: {self.duration_s:.2f} s" + (" (DAMAGED: partial)" if self.damaged else "")]
        for t, d in self.as_dict()["topics"].items():
            skipped = ", ".join(f"{n} {r}" for r, n in d["skipped"].items())
            lines.append(f"  {t} [{d['type']}]: {d['read']} read, {d['used']} used"
                         + (f"; skipped: {skipped}" if skipped else ""))
        if self.damaged and not self.counts_known:
            lines.append("  messages lost: unknown (no bag index, MCAP summary or metadata.yaml says "
                         "how many the bag held)")
        for t, n in self.lost_in_file().items():
            lines.append(f"  {t}: {n} of {self.in_bag[t]} announced messages missing from the file"
                         f" (counts from {self.announced_by})")
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


def read_bag(path: str | Path, account: BagAccount, topics=None):
    """Yield BagMessage in log-time order from a rosbag2 directory (or a lone .mcap file).

    Messages of unknown types or that fail to deserialize are skipped and counted on
    ``account``. A file that ends early stops the iteration with a problem recorded, keeping
    what was read; an MCAP whose index or footer is missing (a recorder that was killed) is
    scanned record by record instead. ``topics``: only these (others count as "not needed").
    """
    from rosbags.rosbag2 import Reader

    path = Path(path)
    account.path = str(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    store = typestore()
    reader = None
    try:
        reader = Reader(path)
        reader.open()
        conns = list(reader.connections)
        for c in conns:
            account.in_bag[c.topic] += int(getattr(c, "msgcount", 0) or 0)
        raw_messages = ((c.topic, c.msgtype, t, raw) for c, t, raw in reader.messages(connections=conns))
    except Exception as exc:  # rosbags raises several kinds on a damaged or foreign file
        mcaps = [path] if path.suffix == ".mcap" else sorted(path.glob("*.mcap")) if path.is_dir() else []
        if not mcaps:
            raise BagError(f"cannot open bag {path}: {exc}") from exc
        account.problems.append(f"cannot open {path} as a complete bag ({exc}); scanned the MCAP "
                                "record by record instead")
        account.damaged = True
        conns, raw_messages = _salvage_mcaps(mcaps, account)
        _announced_counts(path, mcaps, account)
    try:
        for c in conns:
            account.topics[c.topic] = c.msgtype
        _learn_types_from_bag(store, conns)
        # rosbags (and the salvage scan) yield in log-time order; stamps that go backwards
        # within a stream are the consumers' to judge
        while True:
            try:
                topic_name, msgtype, t_ns, raw = next(raw_messages)
            except StopIteration:
                break
            except Exception as exc:  # a damaged chunk: what came before is kept
                account.damaged = True
                account.problems.append(f"bag ends early or is damaged ({type(exc).__name__}: {exc}); "
                                        "kept the messages read before")
                break
            account.read[topic_name] += 1
            if topics is not None and topic_name not in topics:
                account.skip(topic_name, "not needed")
                continue
            if msgtype not in store.types:
                account.skip(topic_name, f"unknown message type {msgtype}")
                continue
            try:
                msg = store.deserialize_cdr(raw, msgtype)
            except Exception as exc:  # corrupt payload
                account.skip(topic_name, f"cannot deserialize ({type(exc).__name__})")
                continue
            account.start_ns = t_ns if account.start_ns is None else account.start_ns
            account.end_ns = t_ns
            yield BagMessage(topic_name, msgtype, t_ns, msg)
    finally:
        if reader is not None:
            try:
                reader.close()
            except Exception:  # a damaged file may fail to close; nothing more to read anyway
                pass


def topic_types(path) -> dict:
    """{topic: message type} from a bag's metadata; {} if it cannot be opened (``read_bag``
    salvages and reports such a bag)."""
    from rosbags.rosbag2 import Reader

    try:
        with Reader(path) as r:
            return {c.topic: c.msgtype for c in r.connections}
    except Exception:  # rosbags raises several kinds on a damaged or foreign file
        return {}


@dataclass
class _Conn:
    topic: str
    msgtype: str
    msgdef: object = None


@dataclass
class _Msgdef:
    data: str
    format: str = "msg"


def _salvage_mcaps(files, account):
    """Connections and (topic, type, log time, data) of MCAP files read front to back.

    MCAP records are opcode (1 byte), length (8), content; messages sit in chunks (possibly
    compressed) or at top level. Reading stops at the first incomplete record.
    """
    import struct

    from rosbags.rosbag2.storage_mcap import decompress

    schemas, channels, found = {}, {}, []

    def string(buf, o):
        n = struct.unpack_from("<I", buf, o)[0]
        return bytes(buf[o + 4:o + 4 + n]).decode(), o + 4 + n

    def records(buf, o, end):
        while o + 9 <= end:
            op, n = struct.unpack_from("<BQ", buf, o)
            if o + 9 + n > end:
                raise EOFError(f"record at byte {o} is cut off")
            yield op, buf[o + 9:o + 9 + n]
            o += 9 + n

    def handle(op, body):
        if op == 0x03:  # schema
            sid = struct.unpack_from("<H", body)[0]
            name, o = string(body, 2)
            _, o = string(body, o)
            n = struct.unpack_from("<I", body, o)[0]
            schemas[sid] = (name, bytes(body[o + 4:o + 4 + n]).decode(errors="replace"))
        elif op == 0x04:  # channel
            cid, sid = struct.unpack_from("<HH", body)
            name, _ = string(body, 4)
            schema = schemas.get(sid, ("?", ""))
            channels[cid] = _Conn(name, schema[0], _Msgdef(schema[1]))
        elif op == 0x05:  # message
            cid, _, log_time = struct.unpack_from("<HIQ", body)
            if cid in channels:
                found.append((channels[cid].topic, channels[cid].msgtype, log_time, bytes(body[22:])))
        elif op == 0x06:  # chunk
            _, _, size, crc = struct.unpack_from("<QQQI", body)
            comp, o = string(body, 28)
            n = struct.unpack_from("<Q", body, o)[0]
            inner = decompress(bytes(body[o + 8:o + 8 + n]), comp, size, crc)
            for rec in records(inner, 0, len(inner)):
                handle(*rec)

    for f in files:
        buf = memoryview(f.read_bytes())
        try:
            for rec in records(buf, 8, len(buf)):
                handle(*rec)
        except Exception as exc:  # the cut: keep everything before it
            account.damaged = True
            account.problems.append(f"{f.name}: stopped at a damaged or cut-off record ({exc})")
    found.sort(key=lambda m: m[2])
    return list({c.topic: c for c in channels.values()}.values()), iter(found)


def _announced_counts(path: Path, mcaps, account) -> None:
    """Messages per topic the bag says it holds, for a bag read by the salvage scan: from the
    MCAP summary (intact only if the file is damaged elsewhere than at its end), else from
    the rosbag2 directory's metadata.yaml (written at a clean close; a killed ``ros2 bag
    record`` may leave one from its last split). Neither: ``announced_by`` stays "" (unknown)."""
    counts: Counter = Counter()
    for f in mcaps:
        got = _mcap_summary_counts(f)
        if got is None:
            counts = None
            break
        counts.update(got)
    if counts is not None:
        account.in_bag, account.announced_by = counts, "mcap summary"
        return
    meta = (path if path.is_dir() else path.parent) / "metadata.yaml"
    try:
        import yaml

        info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
        files = {Path(p).name for p in info.get("relative_file_paths") or ()}
        if not path.is_dir() and path.name not in files:
            raise ValueError(f"{meta} describes other files")
        counts = Counter()
        for t in info.get("topics_with_message_count") or ():
            name = t["topic_metadata"]["name"]
            counts[name] += int(t["message_count"])
            account.topics.setdefault(name, t["topic_metadata"].get("type", "?"))
    except FileNotFoundError:
        account.announced_by = ""
        return
    except Exception as exc:  # unreadable metadata: the counts are unknown, not zero
        account.problems.append(f"{meta.name} unreadable ({type(exc).__name__}: {exc}): lost counts unknown")
        account.announced_by = ""
        return
    account.in_bag, account.announced_by = counts, "metadata.yaml"


def _mcap_summary_counts(f: Path) -> dict | None:
    """{topic: message count} from an MCAP file's summary (Statistics + Channel records), or
    None when the footer, summary or statistics are missing."""
    import struct

    try:
        with open(f, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            if size < 8 + 29 + 8:
                return None
            fh.seek(size - 8 - 29)
            tail = fh.read(29 + 8)
            if tail[-8:] != b"\x89MCAP0\r\n" or tail[0] != 0x02:
                return None
            summary_start = struct.unpack_from("<Q", tail, 9)[0]
            if not 0 < summary_start < size - 37:
                return None
            fh.seek(summary_start)
            buf = fh.read(size - 37 - summary_start)
    except OSError:
        return None
    channels, per_channel, o = {}, None, 0
    while o + 9 <= len(buf):
        op, n = struct.unpack_from("<BQ", buf, o)
        body = buf[o + 9:o + 9 + n]
        if len(body) < n:
            return None
        if op == 0x04:  # channel: id, schema id, topic
            cid = struct.unpack_from("<H", body)[0]
            k = struct.unpack_from("<I", body, 4)[0]
            channels[cid] = body[8:8 + k].decode(errors="replace")
        elif op == 0x0B:  # statistics: ... then channel_message_counts map<u16, u64>
            k = struct.unpack_from("<I", body, 42)[0]
            per_channel = {struct.unpack_from("<H", body, 46 + i)[0]: struct.unpack_from("<Q", body, 48 + i)[0]
                           for i in range(0, k, 10)}
        o += 9 + n
    if per_channel is None:
        return None
    out: Counter = Counter()
    for cid, n in per_channel.items():
        out[channels.get(cid, f"channel {cid}")] += n
    return out


def _learn_types_from_bag(store, conns) -> None:
    """Register message types the bag defines itself (mcap schemas, rosbag2 >= v8 metadata)."""
    from rosbags.typesys import get_types_from_msg

    for c in conns:
        if c.msgtype in store.types:
            continue
        msgdef = getattr(c, "msgdef", None)
        text = getattr(msgdef, "data", None) if msgdef is not None else None
        fmt = str(getattr(getattr(msgdef, "format", None), "name", getattr(msgdef, "format", "msg"))).lower()
        if not text or fmt not in ("msg", "ros2msg"):
            continue
        try:
            store.register(_split_msgdef(text, c.msgtype, get_types_from_msg))
        except Exception:  # an unparsable definition: the messages are skipped and counted
            continue


def _split_msgdef(text: str, msgtype: str, parse) -> dict:
    """A concatenated ROS 2 message definition (main type, then '====' MSG: dependencies)."""
    types = {}
    parts = text.split("=" * 80)
    types.update(parse(parts[0], msgtype))
    for part in parts[1:]:
        lines = part.strip().splitlines()
        if lines and lines[0].startswith("MSG: "):
            name = lines[0][5:].strip()
            if "/msg/" not in name:
                name = name.replace("/", "/msg/")
            types.update(parse("\n".join(lines[1:]), name))
    return types


# -- conversions (core.messages with the rosbags classes) ----------------------------------------

def t_to_ns(t: float) -> int:
    return int(round(t * 1e9))


def kit() -> messages.MessageKit:
    """The rosbags flavour of the package's messages (built on first use: it reads the .msg files)."""
    global _KIT
    if _KIT is None:
        types = typestore().types
        _KIT = messages.MessageKit(
            time=types["builtin_interfaces/msg/Time"], header=types["std_msgs/msg/Header"],
            face_motion=types[FACE_MOTION], audio_data=types[AUDIO_DATA], audio_stamped=types[AUDIO_STAMPED],
            audio_info=types[AUDIO_INFO], image=types[IMAGE], compressed_image=types[COMPRESSED_IMAGE],
            u8=lambda data: np.frombuffer(bytes(data), np.uint8),
            f32=lambda values: np.asarray(values, np.float32))
    return _KIT


_KIT: messages.MessageKit | None = None


def header(t: float, frame_id: str = ""):
    return messages.make_header(kit(), t, frame_id)


def image_msg(rgb: np.ndarray, t: float, frame_id: str = "", encoding: str = "rgb8"):
    return messages.image_msg(kit(), rgb, t, frame_id, encoding)


def compressed_image_msg(rgb: np.ndarray, t: float, frame_id: str = "", fmt: str = "jpeg",
                         quality: int = 85):
    """An RGB picture as a CompressedImage; ``fmt`` plain ("jpeg") or as image_transport writes it."""
    codec = parse_compressed_format(fmt)[1]
    return messages.compressed_image_msg(kit(), encode_compressed(rgb, codec, quality), codec, t, frame_id)


def audio_msg(pcm: bytes, t: float, frame_id: str = ""):
    return messages.audio_stamped_msg(kit(), pcm, t, frame_id)


def audio_info_msg(sample_rate: int = 16000, channels: int = 1, sample_format: str = "S16LE",
                   coding_format: str = "wave"):
    return messages.audio_info_msg(kit(), sample_rate, channels, sample_format, coding_format)


def face_motion_msg(space: MotionSpace, values: np.ndarray, confidence: float, face_present: bool,
                    t: float, frame_id: str = ""):
    return messages.face_motion_msg(kit(), space, values, confidence, face_present, t, frame_id)

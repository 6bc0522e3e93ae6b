"""Show rendered frames on the robot's face screen: one borderless full-screen OpenCV window.

OpenCV's HighGUI (Qt in the opencv-contrib wheel that mediapipe brings) draws the window in a
child process whose main thread owns Qt: Qt does not paint reliably from a non-main thread
(the renderer node renders on a worker thread), one Qt application can open only one X
display, and a Qt abort (lost X server) then ends the child, not the node. Frames go to the
child through a pipe, newest first; ``show`` never blocks on the screen. The X display is
checked before anything starts, so a missing one is a clear RuntimeError.
"""
from __future__ import annotations

import json
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time

import cv2
import numpy as np

log = logging.getLogger(__name__)


def highgui_backend() -> str | None:
    """The GUI toolkit this cv2 was built with ("QT5", "GTK3", ...), or None if headless."""
    info = cv2.getBuildInformation()
    start = info.find("GUI:")
    if start < 0:
        return None
    value = info[start + 4: info.find("\n", start)].strip()
    return None if value in ("", "NONE") else value


def _x_connect(name: str) -> socket.socket | None:
    host, _, rest = name.rpartition(":")
    try:
        number = int(rest.split(".")[0])
    except ValueError:
        return None
    try:
        if host in ("", "unix"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(2.0)
            sock.connect(f"/tmp/.X11-unix/X{number}")
        else:
            sock = socket.create_connection((host, 6000 + number), timeout=2.0)
    except OSError:
        return None
    return sock


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("X server closed the connection")
        data += chunk
    return data


def _x_setup(name: str, attempts: int = 3) -> tuple[int, bytes] | None:
    """The X connection-setup reply (status, body) without credentials, or None if no server.

    Status 1 is success; 0 or 2 still prove a server is there (it wants an auth cookie).
    Xvfb now and then drops a fresh connection, so a failed handshake is tried again.
    """
    for attempt in range(attempts):
        reply = _x_setup_once(name)
        if reply is not None:
            return reply
        time.sleep(0.05 * (attempt + 1))
    return None


def _x_setup_once(name: str) -> tuple[int, bytes] | None:
    sock = _x_connect(name)
    if sock is None:
        return None
    try:
        # little-endian client, protocol 11.0, no authorisation
        sock.sendall(struct.pack("<BxHHHHxx", ord("l"), 11, 0, 0, 0))
        head = _recv_exact(sock, 8)
        length = struct.unpack("<H", head[6:8])[0]
        return head[0], _recv_exact(sock, 4 * length)
    except OSError:
        return None
    finally:
        sock.close()


def x_display_reachable(name: str) -> bool:
    """True when an X server answers at ``name`` (":N", ":N.S" or "host:N")."""
    return _x_setup(name) is not None


def x_screen_size(name: str) -> tuple[int, int] | None:
    """(width, height) of the first X screen's root window (all monitors), or None."""
    setup = _x_setup(name)
    if setup is not None and setup[0] == 1:
        body = setup[1]
        vendor_len = struct.unpack("<H", body[16:18])[0]
        n_formats = body[21]
        screen = 32 + (vendor_len + 3) // 4 * 4 + 8 * n_formats
        return struct.unpack("<HH", body[screen + 20: screen + 24])
    # the server wants credentials: let libxcb (through Pillow) use the user's cookie
    for _ in range(3):
        try:
            from PIL import ImageGrab
            return tuple(ImageGrab.grab(xdisplay=name).size)
        except Exception:
            continue
    return None


def fit_to_screen(bgr: np.ndarray, screen_size, keep_aspect: bool) -> np.ndarray:
    """Scale a frame to the screen (letterboxed in black when keeping its aspect). Done here
    because Qt's HighGUI does not enlarge images in a full-screen window."""
    if screen_size is None:
        return bgr
    sw, sh = screen_size
    h, w = bgr.shape[:2]
    if not keep_aspect:
        return cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_LINEAR)
    k = min(sw / w, sh / h)
    fw, fh = max(1, round(w * k)), max(1, round(h * k))
    canvas = np.zeros((sh, sw, 3), np.uint8)
    x0, y0 = (sw - fw) // 2, (sh - fh) // 2
    canvas[y0:y0 + fh, x0:x0 + fw] = cv2.resize(bgr, (fw, fh), interpolation=cv2.INTER_LINEAR)
    return canvas


_SHOWN, _KEY, _REOPENED = 0, 1, 2  # status messages from the window process: (kind, value)
_CLOSE = struct.pack("<II", 0, 0)  # a frame header of height 0
_CHECK_EVERY_S = 1.0  # how often the window process checks the screen shows its frames


def _read_exact(stream, n):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            raise EOFError
        got += k
    return bytes(buf)


class _Window:
    """The HighGUI window of the window process, with the checks that keep it on the screen.

    Without a window manager (a bare X server on a robot, Xvfb) Qt does not size a full-screen
    window itself, so it is sized explicitly; and now and then under load Qt maps the window but
    never paints it: the screen stays black while every imshow succeeds (seen on Xvfb, about 1
    start in 7 with two busy cores). So every few seconds the screen under the window is read
    back; black where the last frame is not, twice in a row, and the window is made anew.
    """

    def __init__(self, settings):
        self.name = settings["window_name"]
        self.fullscreen = settings["fullscreen"]
        self.keep_aspect = settings["keep_aspect"]
        self.position = tuple(settings["position"])
        self.size = None if settings["screen_size"] is None else tuple(settings["screen_size"])
        self.display = settings["display"]
        self.is_open = False
        self.reopened = 0
        self._black_checks = 0
        self._next_check = 0.0

    def show(self, bgr):
        if self.fullscreen:
            bgr = fit_to_screen(bgr, self.size, self.keep_aspect)
        if not self.is_open:
            ratio = cv2.WINDOW_KEEPRATIO if self.keep_aspect else cv2.WINDOW_FREERATIO
            cv2.namedWindow(self.name, cv2.WINDOW_NORMAL | cv2.WINDOW_GUI_NORMAL | ratio)
            if self.fullscreen and self.size is not None:
                cv2.resizeWindow(self.name, *self.size)  # before it maps: no resize race
            cv2.moveWindow(self.name, *self.position)
        cv2.imshow(self.name, bgr)
        if not self.is_open:
            if self.fullscreen:  # for a window manager, which then keeps it above panels
                cv2.setWindowProperty(self.name, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
            self.is_open = True
            self._next_check = time.monotonic() + _CHECK_EVERY_S
        elif time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + _CHECK_EVERY_S
            self._check(bgr)

    def _check(self, bgr):
        if self.fullscreen and not _is_fullscreen(self.name):
            cv2.setWindowProperty(self.name, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        if self.display is None or self._unpainted(bgr) is not True:
            self._black_checks = 0
            return
        self._black_checks += 1
        if self._black_checks >= 2:
            log.warning("display: window %r is mapped but shows nothing; making it anew", self.name)
            self.close()
            self.reopened += 1
            self._black_checks = 0

    def _unpainted(self, bgr) -> bool | None:
        """True when the screen under the window is black where the frame is not; None when the
        screen cannot be read (no permission, X busy): then nothing is concluded."""
        h, w = bgr.shape[:2]
        x, y = self.position
        try:
            from PIL import ImageGrab
            shot = np.asarray(ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=self.display))
        except Exception:
            return None
        if shot.ndim != 3 or shot.shape[:2] != (h, w):
            return None
        lit = bgr.max(axis=2) > 40
        return bool(lit.mean() > 0.05 and shot[..., :3][lit].max(axis=-1).mean() < 8)

    def close(self):
        if self.is_open:
            cv2.destroyWindow(self.name)
            cv2.waitKey(1)
            self.is_open = False


def _window_main(settings):
    """The window process: frames (8-byte header h, w; then h*w*3 RGB bytes; h = 0 closes) on
    stdin, newest painted; (kind, value) int32 pairs on stdout."""
    # status goes on our own copy of stdout; anything a library prints goes to stderr instead
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    inp = sys.stdin.buffer
    window = _Window(settings)
    shown = 0

    def status(kind, value):
        out.write(struct.pack("<ii", kind, value))
        out.flush()

    while True:
        rgb = None
        try:
            while select.select([inp], [], [], 0.01 if rgb is None else 0)[0]:
                h, w = struct.unpack("<II", _read_exact(inp, 8))
                if h == 0:
                    raise EOFError
                rgb = np.frombuffer(_read_exact(inp, h * w * 3), np.uint8).reshape(h, w, 3)
        except EOFError:  # closed, or the node went away
            break
        if rgb is not None:
            reopened = window.reopened
            window.show(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            shown += 1
            status(_SHOWN, shown)
            if window.reopened != reopened:
                status(_REOPENED, window.reopened)
        if window.is_open:
            key = cv2.waitKey(1)  # lets Qt paint and read the keyboard
            if key != -1:
                status(_KEY, key)
    window.close()


def _is_fullscreen(name: str) -> bool:
    """Whether Qt has the window visible and full screen (a window manager may take it back)."""
    try:
        return (cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) >= 1
                and cv2.getWindowProperty(name, cv2.WND_PROP_FULLSCREEN) == cv2.WINDOW_FULLSCREEN)
    except cv2.error:
        return False


class FaceScreenDisplay:
    """A full-screen window that shows RGB frames; ``show`` and ``close`` from any thread.

    display: X display name (e.g. ":0"); None uses $DISPLAY. position: top-left (x, y) of the
    screen to use on a multi-monitor desktop; the window goes there before it turns full-screen.
    screen_size: (width, height) the full-screen window must cover. Without a window manager
    (a bare X server on a robot, or Xvfb) Qt does not resize a full-screen window itself, so the
    window is also sized explicitly; None reads the X root window's size (all monitors).
    keep_aspect: letterbox (black bars) instead of stretching frames whose aspect differs from
    the screen. Frames are scaled to the screen here, so the toolkit shows them 1:1.
    A frame not yet sent when the next arrives is replaced (counted in ``frames_replaced``).
    If the window process dies (Qt aborts when its X connection fails), the next ``show``
    starts a new one, up to ``max_restarts`` times; then ``show`` raises RuntimeError.
    """

    def __init__(self, window_name="avatar_face", fullscreen=True, display=None, position=(0, 0),
                 keep_aspect=True, screen_size=None, max_restarts=3):
        backend = highgui_backend()
        if backend is None:
            raise RuntimeError("this OpenCV has no GUI backend (opencv-python-headless?): install "
                               "opencv-contrib-python, which mediapipe depends on, to show the face")
        name = display or os.environ.get("DISPLAY")
        if not name:
            raise RuntimeError("no X display: set the display parameter or $DISPLAY (e.g. ':0')")
        if not x_display_reachable(name):
            raise RuntimeError(f"cannot reach X display {name!r}: is the X server running and "
                               f"is this user allowed on it?")
        self.display = name
        self.window_name = str(window_name)
        self.fullscreen = bool(fullscreen)
        self.position = (int(position[0]), int(position[1]))
        self.keep_aspect = bool(keep_aspect)
        if screen_size is None and self.fullscreen:
            screen_size = x_screen_size(name)
        self.screen_size = None if screen_size is None else (int(screen_size[0]), int(screen_size[1]))
        self.backend = backend
        self.frames_replaced = 0
        self._windows_reopened = 0
        self._status_buf = b""
        self._frames_shown = 0
        self._last_key = -1
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._pending: bytes | None = None
        self._wake = threading.Event()
        self._process = self._sender = None
        self._generation = 0  # of the window process; an old sender thread sees it change
        self.max_restarts = int(max_restarts)
        self.restarts = 0
        self._closed = False

    def _start(self):
        settings = dict(window_name=self.window_name, fullscreen=self.fullscreen, position=self.position,
                        keep_aspect=self.keep_aspect, screen_size=self.screen_size, display=self.display)
        env = dict(os.environ, DISPLAY=self.display)  # Qt reads it when its application starts
        # the child imports this module by name: make sure it finds the same package
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
        process = subprocess.Popen([sys.executable, "-m", __name__, json.dumps(settings)], env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        os.set_blocking(process.stdout.fileno(), False)
        self._status_buf = b""
        self._generation += 1
        self._sender = threading.Thread(target=self._send_loop, args=(process.stdin, self._generation),
                                        name="display sender", daemon=True)
        self._sender.start()
        self._process = process  # last: other threads read the status once this is set

    def _send_loop(self, pipe, generation):
        # the pipe blocks while the window process is busy; the caller of show() never does
        while generation == self._generation:
            if not self._wake.wait(0.2):
                continue
            with self._lock:
                if generation != self._generation:
                    return
                msg, self._pending = self._pending, None
                self._wake.clear()
            if msg is None:
                continue
            try:
                pipe.write(msg)
                pipe.flush()
            except OSError:
                return  # the window process is gone; show() restarts or reports it
            if msg == _CLOSE:
                return

    def _read_status(self):
        with self._lock:
            try:
                data = self._process.stdout.read()
            except (OSError, ValueError):  # ValueError: closed by close()
                data = None
            if not data:
                return
            data = self._status_buf + data
            n = len(data) // 8 * 8
            self._status_buf = data[n:]
            for kind, value in struct.iter_unpack("<ii", data[:n]):
                if kind == _SHOWN:
                    self._frames_shown = value
                elif kind == _REOPENED:
                    self._windows_reopened += 1
                else:
                    self._last_key = value

    @property
    def frames_shown(self) -> int:
        """Frames the window process has put on the screen so far."""
        if self._process is not None:
            self._read_status()
        return self._frames_shown

    @property
    def windows_reopened(self) -> int:
        """Windows made anew because the screen stayed black under them (see _Window)."""
        if self._process is not None:
            self._read_status()
        return self._windows_reopened

    @property
    def last_key(self) -> int:
        """The last key pressed in the window (cv2.waitKey code), or -1."""
        if self._process is not None:
            self._read_status()
        return self._last_key

    def show(self, frame: np.ndarray) -> None:
        """Send one (H, W, 3) uint8 RGB frame to the screen (the newest one wins)."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be an (H, W, 3) uint8 RGB array, got {frame.shape} {frame.dtype}")
        if self._closed:
            raise RuntimeError(f"display window {self.window_name!r} is closed")
        with self._start_lock:
            if self._process is None:
                self._start()
            elif self._process.poll() is not None:
                code = self._process.returncode
                if self.restarts >= self.max_restarts:
                    raise RuntimeError(f"the display process of {self.window_name!r} on {self.display!r} "
                                       f"exited with code {code} (X server gone?), {self.restarts} restarts")
                self.restarts += 1
                log.warning("display process of %r exited with code %s; restarting (%d/%d)",
                            self.window_name, code, self.restarts, self.max_restarts)
                self._frames_shown = 0
                self._start()
        msg = struct.pack("<II", frame.shape[0], frame.shape[1]) + np.ascontiguousarray(frame).tobytes()
        with self._lock:
            if self._pending is not None:
                self.frames_replaced += 1
            self._pending = msg
            self._wake.set()

    def close(self, timeout: float = 5.0) -> bool:
        """Close the window; False if its process had to be killed."""
        if self._closed:
            return True
        self._closed = True
        if self._process is None:
            return True
        with self._lock:
            self._pending = _CLOSE
            self._wake.set()
        self._sender.join(timeout)
        try:
            clean = self._process.wait(timeout) == 0
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout)
            clean = False
        self._read_status()
        for pipe in (self._process.stdin, self._process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        return clean


if __name__ == "__main__":
    _window_main(json.loads(sys.argv[1]))

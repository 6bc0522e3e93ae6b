"""Show rendered frames on the robot's face screen: one borderless full-screen OpenCV window.

OpenCV's HighGUI (Qt in the opencv-contrib wheel that mediapipe brings) draws the window.
Qt aborts the whole process when it cannot open the X display, so the display is checked
first and a missing one is a clear RuntimeError instead. HighGUI is not thread-safe: call
``show`` from one thread only (the renderer node's timer).
"""
from __future__ import annotations

import os
import socket
import struct
import time

import cv2
import numpy as np


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


class FaceScreenDisplay:
    """A full-screen window that shows RGB frames.

    display: X display name (e.g. ":0"); None uses $DISPLAY. Qt opens one display per process,
    so the first window decides it. position: top-left (x, y) of the screen to use on a
    multi-monitor desktop; the window goes there before it turns full-screen.
    screen_size: (width, height) the full-screen window must cover. Without a window manager
    (a bare X server on a robot, or Xvfb) Qt does not resize a full-screen window itself, so the
    window is also sized explicitly; None reads the X root window's size (all monitors).
    keep_aspect: letterbox (black bars) instead of stretching frames whose aspect differs from
    the screen. Frames are scaled to the screen here, so the toolkit shows them 1:1.
    """

    _qt_display: str | None = None  # the display Qt opened in this process

    def __init__(self, window_name="avatar_face", fullscreen=True, display=None, position=(0, 0),
                 keep_aspect=True, screen_size=None):
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
        if FaceScreenDisplay._qt_display not in (None, name):
            raise RuntimeError(f"this process already shows windows on {FaceScreenDisplay._qt_display!r}; "
                               f"one process cannot switch to {name!r}")
        self.display = name
        self.window_name = str(window_name)
        self.fullscreen = bool(fullscreen)
        self.position = (int(position[0]), int(position[1]))
        self.keep_aspect = bool(keep_aspect)
        if screen_size is None and self.fullscreen:
            screen_size = x_screen_size(name)
        self.screen_size = None if screen_size is None else (int(screen_size[0]), int(screen_size[1]))
        self.backend = backend
        self.frames_shown = 0
        self._open = False

    def _open_window(self):
        os.environ["DISPLAY"] = self.display  # Qt reads it when its application starts
        FaceScreenDisplay._qt_display = self.display
        ratio = cv2.WINDOW_KEEPRATIO if self.keep_aspect else cv2.WINDOW_FREERATIO
        cv2.namedWindow(self.window_name, cv2.WINDOW_NORMAL | cv2.WINDOW_GUI_NORMAL | ratio)
        cv2.moveWindow(self.window_name, *self.position)
        self._open = True

    def _go_full_screen(self):
        # only after the first imshow: Qt sizes a new window to its first image
        cv2.moveWindow(self.window_name, *self.position)
        if self.screen_size is not None:
            cv2.resizeWindow(self.window_name, *self.screen_size)
        cv2.setWindowProperty(self.window_name, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)

    def _fit(self, bgr):
        """Scale to the screen ourselves: Qt's HighGUI does not enlarge images in full screen."""
        if not self.fullscreen or self.screen_size is None:
            return bgr
        sw, sh = self.screen_size
        h, w = bgr.shape[:2]
        if not self.keep_aspect:
            return cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_LINEAR)
        k = min(sw / w, sh / h)
        fw, fh = max(1, round(w * k)), max(1, round(h * k))
        canvas = np.zeros((sh, sw, 3), np.uint8)  # black bars
        x0, y0 = (sw - fw) // 2, (sh - fh) // 2
        canvas[y0:y0 + fh, x0:x0 + fw] = cv2.resize(bgr, (fw, fh), interpolation=cv2.INTER_LINEAR)
        return canvas

    def show(self, frame: np.ndarray) -> int:
        """Show one (H, W, 3) uint8 RGB frame; returns the key pressed meanwhile, or -1."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be an (H, W, 3) uint8 RGB array, got {frame.shape} {frame.dtype}")
        if not self._open:
            self._open_window()
        cv2.imshow(self.window_name, self._fit(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)))
        if self.frames_shown == 0 and self.fullscreen:
            self._go_full_screen()
        self.frames_shown += 1
        return cv2.waitKey(1)  # lets Qt paint and read the keyboard

    def close(self):
        if self._open:
            cv2.destroyWindow(self.window_name)
            cv2.waitKey(1)
            self._open = False

"""The face-screen display, on a virtual X screen (Xvfb): what is shown is what is on the screen.

Each screen test runs a child "node" process that shows frames from a worker thread (as the
renderer node does) and grabs the screen with Pillow's XCB grabber.
"""
import os
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from avatar_forcing_ros.render.display import FaceScreenDisplay, highgui_backend

from conftest import XVFB_SCREEN as SCREEN  # the virtual screen of the xvfb fixture

SHOW_AND_GRAB = r"""
import sys, threading, time
import numpy as np
import cv2
from PIL import ImageGrab
from avatar_forcing_ros.render.display import FaceScreenDisplay

display, frame_path, expected_path, shot_path, keep_aspect = sys.argv[1:6]
frame = cv2.cvtColor(cv2.imread(frame_path), cv2.COLOR_BGR2RGB)
expected = cv2.cvtColor(cv2.imread(expected_path), cv2.COLOR_BGR2RGB).astype(np.int16)
screen = FaceScreenDisplay(display=display, keep_aspect=keep_aspect == "1")
stop = threading.Event()

def renderer_worker():  # as in the renderer node: frames come from a worker thread
    while not stop.is_set():
        screen.show(frame)
        time.sleep(0.02)

worker = threading.Thread(target=renderer_worker)
worker.start()
# the window maps and resizes asynchronously: grab until the screen settles
deadline = time.monotonic() + 15
rounds = 0
while True:
    time.sleep(0.1)
    rounds += 1
    try:
        shot = np.asarray(ImageGrab.grab(xdisplay=display))[..., :3]
    except OSError:  # Xvfb now and then drops a fresh connection
        continue
    diff = np.abs(shot.astype(np.int16) - expected).mean()
    if diff < 3 or time.monotonic() > deadline:
        break
stop.set()
worker.join()
cv2.imwrite(shot_path, cv2.cvtColor(shot, cv2.COLOR_RGB2BGR))
print(f"rounds {rounds} mean difference {diff:.2f} screen {screen.screen_size} shown {screen.frames_shown} restarts {screen.restarts} child {screen._process.poll()}")
print("closed", screen.close())  # from the main thread, neither the worker nor the GUI thread
"""


def show_and_grab(display, frame, expected, tmp_path, keep_aspect):
    paths = [str(tmp_path / n) for n in ("frame.png", "expected.png", "shot.png")]
    cv2.imwrite(paths[0], cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    cv2.imwrite(paths[1], cv2.cvtColor(expected, cv2.COLOR_RGB2BGR))
    env = dict(os.environ, QT_LOGGING_RULES="*.debug=false;qt.qpa.*=false")
    done = subprocess.run([sys.executable, "-c", SHOW_AND_GRAB, display, *paths, "1" if keep_aspect else "0"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "closed True" in done.stdout, done.stdout
    print(done.stdout, done.stderr[-2000:])  # shown by pytest when the comparison fails
    return cv2.cvtColor(cv2.imread(paths[2]), cv2.COLOR_BGR2RGB)


def test_opencv_has_a_gui_backend():
    assert highgui_backend() is not None


def test_full_screen_window_covers_the_screen_with_the_frame(xvfb, tmp_path):
    from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
    from avatar_forcing_ros.render.stylised import StylisedFaceRenderer
    frame = StylisedFaceRenderer(width=400, height=300).render(M.from_dict({"jawOpen": 0.7, "head_roll": 0.2}))
    expected = cv2.resize(frame, SCREEN, interpolation=cv2.INTER_LINEAR)
    shot = show_and_grab(xvfb, frame, expected, tmp_path, keep_aspect=True)
    assert shot.shape == (SCREEN[1], SCREEN[0], 3)
    diff = np.abs(shot.astype(np.int16) - expected).max(2)
    assert diff.mean() < 3 and np.percentile(diff, 99) < 60


def test_square_frame_is_letterboxed_when_keeping_the_aspect(xvfb, tmp_path):
    frame = np.full((300, 300, 3), (200, 40, 90), np.uint8)
    expected = np.zeros((SCREEN[1], SCREEN[0], 3), np.uint8)
    side = SCREEN[1]
    left = (SCREEN[0] - side) // 2
    expected[:, left:left + side] = frame[0, 0]
    shot = show_and_grab(xvfb, frame, expected, tmp_path, keep_aspect=True)
    assert np.abs(shot[:, left + 10:left + side - 10].astype(np.int16) - frame[0, 0]).max() <= 2
    assert shot[:, :left - 10].max() <= 2 and shot[:, left + side + 10:].max() <= 2


def test_unreachable_display_is_a_clear_error():
    with pytest.raises(RuntimeError, match="cannot reach X display ':9876'"):
        FaceScreenDisplay(display=":9876")


def test_missing_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(RuntimeError, match="no X display"):
        FaceScreenDisplay()


def test_bad_frame_is_rejected_before_any_window_opens(xvfb):
    screen = FaceScreenDisplay(display=xvfb)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB"):
        screen.show(np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB"):
        screen.show(np.zeros((48, 64, 3), np.float32))
    assert screen.frames_shown == 0 and screen._process is None
    screen.close()
    with pytest.raises(RuntimeError, match="is closed"):
        screen.show(np.zeros((48, 64, 3), np.uint8))


def test_screen_size_is_read_from_the_x_server(xvfb):
    from avatar_forcing_ros.render.display import x_screen_size
    assert x_screen_size(xvfb) == SCREEN
    assert FaceScreenDisplay(display=xvfb).screen_size == SCREEN


def _wait_until(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_a_dead_window_process_is_restarted_then_reported(xvfb):
    frame = np.full((120, 160, 3), 90, np.uint8)
    screen = FaceScreenDisplay(display=xvfb, max_restarts=1)
    try:
        screen.show(frame)
        assert _wait_until(lambda: screen.frames_shown > 0)
        screen._process.kill()  # as when Qt aborts on a lost X connection
        screen._process.wait()
        screen.show(frame)
        assert screen.restarts == 1
        assert _wait_until(lambda: screen.frames_shown > 0)
        screen._process.kill()
        screen._process.wait()
        with pytest.raises(RuntimeError, match="exited with code -9"):
            screen.show(frame)
    finally:
        screen.close()


COVER = r"""
import sys, cv2, numpy as np
width, height = int(sys.argv[1]), int(sys.argv[2])
cv2.namedWindow("cover", cv2.WINDOW_NORMAL | cv2.WINDOW_GUI_NORMAL)
cv2.resizeWindow("cover", width, height)
cv2.moveWindow("cover", 0, 0)
cv2.imshow("cover", np.zeros((height, width, 3), np.uint8))
while True:
    cv2.waitKey(50)
"""


def test_a_window_that_shows_nothing_is_made_anew(xvfb):
    """Under load Qt now and then maps the window and never paints it: the screen stays black.
    The window process reads the screen back; here a black window laid over the face stands in
    for the unpainted one: the face window must be made anew and come back on top."""
    from PIL import ImageGrab

    frame = np.full((SCREEN[1], SCREEN[0], 3), (30, 160, 220), np.uint8)

    def on_screen():
        try:
            shot = np.asarray(ImageGrab.grab(xdisplay=xvfb))[..., :3].astype(np.int16)
        except OSError:
            return False
        return np.abs(shot - frame).mean() < 3

    screen = FaceScreenDisplay(display=xvfb)
    stop = threading.Event()

    def stream():
        while not stop.is_set():
            screen.show(frame)
            time.sleep(0.04)

    feeder = threading.Thread(target=stream)
    feeder.start()
    cover = None
    try:
        assert _wait_until(on_screen, 20), "the face never reached the screen"
        cover = subprocess.Popen([sys.executable, "-c", COVER, *map(str, SCREEN)],
                                 env=dict(os.environ, DISPLAY=xvfb), stderr=subprocess.DEVNULL)
        assert _wait_until(lambda: not on_screen(), 20), "the black cover never showed"
        assert _wait_until(on_screen, 20), "the face window was not made anew over the black one"
        assert screen.windows_reopened >= 1
    finally:
        stop.set()
        feeder.join()
        if cover is not None:
            cover.kill()
            cover.wait()
        screen.close()

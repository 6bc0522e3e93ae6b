"""The photo-portrait renderer (skimage's public-domain astronaut): warps, mouth, eyelids, errors."""
import cv2
import numpy as np
import pytest

from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
from avatar_forcing_ros.render import make_renderer
from avatar_forcing_ros.render.portrait import EYE_LOWER, EYE_UPPER, LIPS_LOWER_OUTER, PortraitRenderer


@pytest.fixture(scope="module")
def renderer():
    return PortraitRenderer()


def draw(renderer, **channels):
    return renderer.render(M.from_dict(channels))


def luminance(img):
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def mouth_box(renderer):
    """Around the lips of the portrait, with room below for the dropped jaw."""
    lm = renderer.landmarks[LIPS_LOWER_OUTER, :2]
    D = renderer.eye_distance
    x0, x1 = lm[:, 0].min() - 0.2 * D, lm[:, 0].max() + 0.2 * D
    y0, y1 = lm[:, 1].min() - 0.4 * D, lm[:, 1].max() + 0.6 * D
    return int(x0), int(y0), int(x1), int(y1)


def dark_area(img, box):
    x0, y0, x1, y1 = box
    return int((luminance(img[y0:y1, x0:x1]) < 60).sum())


def eye_mask(renderer, side):
    """Pixels inside the open eye's contour, shrunk by 3 px to stay clear of the lash line."""
    contour = np.concatenate([renderer.landmarks[EYE_UPPER[side], :2], renderer.landmarks[EYE_LOWER[side][::-1], :2]])
    mask = np.zeros((renderer.height, renderer.width), np.uint8)
    cv2.fillPoly(mask, [np.round(contour).astype(np.int32)], 1)
    return cv2.erode(mask, np.ones((7, 7), np.uint8)).astype(bool)


def test_neutral_frame_is_the_face_crop(renderer):
    img = draw(renderer)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    assert np.abs(img.astype(np.int16) - renderer.base).mean() < 0.5


def test_crop_frames_the_face(renderer):
    lm = renderer.landmarks
    assert 0.3 * renderer.width < renderer.face_width < 0.55 * renderer.width
    assert lm[:, 0].min() > 0 and lm[:, 0].max() < renderer.width
    assert lm[:, 1].min() > 0 and lm[:, 1].max() < renderer.height


def test_jaw_open_adds_dark_mouth_pixels(renderer):
    box = mouth_box(renderer)
    areas = [dark_area(draw(renderer, jawOpen=j), box) for j in (0.0, 0.5, 1.0)]
    assert areas[0] < areas[1] < areas[2], areas
    assert areas[2] > areas[0] + 0.1 * renderer.eye_distance ** 2, areas


def test_jaw_open_moves_the_chin_down(renderer):
    # the chin line below the mouth: rows where the frame changed move down with the jaw
    img = draw(renderer, jawOpen=1.0).astype(np.int16)
    changed = np.abs(img - renderer.base).sum(2) > 30
    chin_y = renderer.landmarks[152, 1]
    assert changed[int(chin_y):int(chin_y + 0.4 * renderer.eye_distance)].any()


def test_full_blink_covers_each_eye_with_lid_colour(renderer):
    for side in ("Left", "Right"):
        mask = eye_mask(renderer, side)
        lid = np.array(renderer.lid_colours[side], np.int16)
        close_to_lid = lambda img: (np.abs(img.astype(np.int16) - lid).max(2) < 20)[mask].mean()
        assert close_to_lid(draw(renderer)) < 0.5
        assert close_to_lid(draw(renderer, **{"eyeBlink" + side: 1.0})) > 0.95


def test_blink_of_one_eye_leaves_the_other_open(renderer):
    img = draw(renderer, eyeBlinkLeft=1.0)
    right = eye_mask(renderer, "Right")
    assert np.array_equal(img[right], renderer.base[right])
    # the face's left eye is on the image's right
    assert renderer.landmarks[EYE_UPPER["Left"], 0].mean() > renderer.landmarks[EYE_UPPER["Right"], 0].mean()


def test_border_and_shoulders_stay_still(renderer):
    img = draw(renderer, head_yaw=0.4, head_pitch=0.2, jawOpen=1.0, mouthSmileLeft=1.0, browInnerUp=1.0)
    diff = np.abs(img.astype(np.int16) - renderer.base).max(2)
    band = np.ones_like(diff, bool)
    band[12:-12, 12:-12] = False
    assert diff[band].mean() < 1.0 and np.percentile(diff[band], 99) <= 8
    shoulders = int(renderer.landmarks[152, 1] + 0.7 * renderer.face_width)
    assert diff[shoulders:].mean() < 1.0


def test_head_pose_changes_the_face_region(renderer):
    img = draw(renderer, head_yaw=0.3)
    diff = np.abs(img.astype(np.int16) - renderer.base).sum(2)
    x0, y0 = renderer.landmarks[:, :2].min(0).astype(int)
    x1, y1 = renderer.landmarks[:, :2].max(0).astype(int)
    assert diff[y0:y1, x0:x1].mean() > 10


def test_yaw_sign_turns_the_nose_toward_the_image_side(renderer):
    nose = renderer.landmarks[1, 0]
    assert renderer.moved_landmarks(M.from_dict({"head_yaw": 0.3}).astype(np.float64))[1, 0] > nose + 3
    assert renderer.moved_landmarks(M.from_dict({"head_yaw": -0.3}).astype(np.float64))[1, 0] < nose - 3


def test_rendering_is_deterministic(renderer):
    v = M.from_dict({"head_yaw": 0.2, "jawOpen": 0.6, "eyeBlinkRight": 0.7, "mouthSmileLeft": 0.5})
    assert np.array_equal(renderer.render(v), renderer.render(v))


def test_non_finite_values_render_as_neutral_and_are_counted(renderer):
    before = renderer.dropped_values
    v = M.neutral()
    v[M.index("jawOpen")] = np.nan
    assert np.array_equal(renderer.render(v), renderer.base)
    assert renderer.dropped_values == before + 1


def test_wrong_length_raises_value_error(renderer):
    with pytest.raises(ValueError, match="expects 28 values"):
        renderer.render(np.zeros(30, np.float32))


def test_output_size_follows_the_parameters():
    r = make_renderer("portrait", width=320, height=256)
    img = r.render(M.from_dict({"jawOpen": 0.5}))
    assert img.shape == (256, 320, 3)


def test_portrait_without_a_face_names_the_file(tmp_path):
    path = tmp_path / "wall.png"
    gradient = np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1))
    cv2.imwrite(str(path), cv2.merge([gradient, gradient, gradient]))
    with pytest.raises(ValueError, match="no face found in portrait .*wall.png"):
        PortraitRenderer(image_path=str(path))


def test_missing_or_undecodable_portrait_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        PortraitRenderer(image_path=str(tmp_path / "nowhere.png"))
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="could not be decoded.*junk.jpg"):
        PortraitRenderer(image_path=str(junk))


def test_image_array_of_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        PortraitRenderer(image=np.zeros((64, 64), np.uint8))

"""The stylised face-screen renderer: each motion channel changes the drawing the way it says."""
import numpy as np
import pytest

from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
from avatar_forcing_ros.render import make_renderer
from avatar_forcing_ros.render.stylised import StylisedFaceRenderer


@pytest.fixture(scope="module")
def renderer():
    return StylisedFaceRenderer()


def draw(renderer, **channels):
    return renderer.render(M.from_dict(channels))


def crop(img, box):
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1]


def luminance(img):
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def dark_area(img, box):
    return int((luminance(crop(img, box)) < 80).sum())


def colour_mask(img, colour, tol=12):
    return np.abs(img.astype(np.int16) - np.array(colour, np.int16)).max(axis=2) <= tol


def centroid(mask):
    ys, xs = np.nonzero(mask)
    assert len(xs) > 0, "nothing of that colour was drawn"
    return xs.mean(), ys.mean()


def test_output_is_uint8_rgb_of_the_requested_size():
    img = StylisedFaceRenderer(width=320, height=240).render(M.neutral())
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8


def test_background_and_face_take_the_given_colours():
    r = StylisedFaceRenderer(width=200, height=200, background=(0, 100, 0), face_colour=(10, 20, 200))
    img = r.render(M.neutral())
    assert tuple(img[0, 0]) == (0, 100, 0)
    assert tuple(img[100, 40]) == (10, 20, 200)  # left cheek, inside the face, clear of features


def test_mouth_dark_area_grows_with_jaw_open(renderer):
    areas = [dark_area(draw(renderer, jawOpen=j), renderer.mouth_box()) for j in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(b > a for a, b in zip(areas, areas[1:])), areas
    assert areas[-1] > 5 * areas[0], areas


def test_mouth_box_contains_the_fully_open_mouth(renderer):
    img = draw(renderer, jawOpen=1.0, mouthFunnel=1.0, mouthStretchLeft=1.0, mouthStretchRight=1.0)
    inside = colour_mask(crop(img, renderer.mouth_box()), renderer.mouth_colour).sum()
    assert inside > 0 and inside == colour_mask(img, renderer.mouth_colour).sum()


def test_full_blink_hides_the_eye_whites_and_pupils(renderer):
    open_img = draw(renderer)
    shut_img = draw(renderer, eyeBlinkLeft=1.0, eyeBlinkRight=1.0)
    for side in ("left", "right"):
        box = renderer.eye_box(side)
        assert colour_mask(crop(open_img, box), renderer.eye_colour).sum() > 50
        assert colour_mask(crop(open_img, box), renderer.pupil_colour).sum() > 50
        assert colour_mask(crop(shut_img, box), renderer.eye_colour).sum() == 0
        assert colour_mask(crop(shut_img, box), renderer.pupil_colour).sum() == 0


def test_eye_blink_left_closes_the_eye_on_the_image_right(renderer):
    img = draw(renderer, eyeBlinkLeft=1.0)
    assert colour_mask(crop(img, renderer.eye_box("left")), renderer.eye_colour).sum() == 0
    assert colour_mask(crop(img, renderer.eye_box("right")), renderer.eye_colour).sum() > 50
    assert renderer.eye_box("left")[0] > renderer.width / 2


def test_half_blink_shows_less_eye_white_than_open(renderer):
    whites = [colour_mask(crop(draw(renderer, eyeBlinkRight=b), renderer.eye_box("right")),
                          renderer.eye_colour).sum() for b in (0.0, 0.5, 0.9)]
    assert whites[0] > whites[1] > whites[2], whites


def test_eye_wide_shows_more_eye_white(renderer):
    white = lambda img: colour_mask(crop(img, renderer.eye_box("left")), renderer.eye_colour).sum()
    assert white(draw(renderer, eyeWideLeft=1.0)) > 1.2 * white(draw(renderer))


@pytest.mark.parametrize("yaw", [0.5, -0.5])
def test_head_yaw_moves_the_features_toward_its_sign(renderer, yaw):
    x0, _ = centroid(colour_mask(draw(renderer), renderer.pupil_colour))
    x1, _ = centroid(colour_mask(draw(renderer, head_yaw=yaw), renderer.pupil_colour))
    assert np.sign(x1 - x0) == np.sign(yaw) and abs(x1 - x0) > 10


def test_head_yaw_foreshortens_the_eye_spacing(renderer):
    def spacing(img):
        mask = colour_mask(img, renderer.pupil_colour)
        half = renderer.width // 2
        xs_left = np.nonzero(mask[:, :half])[1]
        xs_right = np.nonzero(mask[:, half:])[1] + half
        return xs_right.mean() - xs_left.mean()
    # after a turn both pupils can sit right of centre; measure between the two blobs instead
    img = draw(renderer, head_yaw=0.5)
    xs = np.sort(np.nonzero(colour_mask(img, renderer.pupil_colour))[1])
    gap = np.argmax(np.diff(xs))
    turned = xs[gap + 1:].mean() - xs[:gap + 1].mean()
    assert turned < 0.95 * spacing(draw(renderer))


def test_head_pitch_up_moves_the_features_up(renderer):
    _, y0 = centroid(colour_mask(draw(renderer), renderer.pupil_colour))
    _, y1 = centroid(colour_mask(draw(renderer, head_pitch=0.4), renderer.pupil_colour))
    assert y1 < y0 - 10


def test_head_roll_rotates_the_face_clockwise(renderer):
    img = draw(renderer, head_roll=0.4)
    mask = colour_mask(img, renderer.pupil_colour)
    half = renderer.width // 2
    _, y_image_left = centroid(mask[:, :half])
    _, y_image_right = centroid(mask[:, half:])
    assert y_image_right > y_image_left + 20  # clockwise: the image-right side goes down


def test_gaze_moves_the_pupils_within_the_eyes(renderer):
    mask0 = colour_mask(draw(renderer), renderer.pupil_colour)
    mask1 = colour_mask(draw(renderer, gaze_yaw=0.6, gaze_pitch=0.4), renderer.pupil_colour)
    (x0, y0), (x1, y1) = centroid(mask0), centroid(mask1)
    assert x1 > x0 + 3 and y1 < y0 - 1
    face_x, _ = centroid(colour_mask(draw(renderer, gaze_yaw=0.6), renderer.feature_colour))
    assert abs(face_x - centroid(colour_mask(draw(renderer), renderer.feature_colour))[0]) < 1.0


def test_head_translation_and_scale_move_and_size_the_face(renderer):
    face = lambda img: colour_mask(img, renderer.face_colour)
    x0, y0 = centroid(face(draw(renderer)))
    x1, y1 = centroid(face(draw(renderer, head_tx=0.2, head_ty=0.1)))
    assert x1 > x0 + 20 and y1 > y0 + 10
    assert face(draw(renderer, head_scale=-0.3)).sum() < 0.7 * face(draw(renderer)).sum()


def _mouth_corner_height(renderer, img):
    dark = luminance(crop(img, renderer.mouth_box())) < 80
    ys, xs = np.nonzero(dark)
    corners = (xs < xs.min() + 6) | (xs > xs.max() - 6)
    middle = np.abs(xs - (xs.min() + xs.max()) / 2) < 6
    return ys[middle].mean() - ys[corners].mean()  # > 0 when the corners are above the middle


def test_smile_lifts_and_frown_drops_the_mouth_corners(renderer):
    neutral = _mouth_corner_height(renderer, draw(renderer))
    smile = _mouth_corner_height(renderer, draw(renderer, mouthSmileLeft=1.0, mouthSmileRight=1.0))
    frown = _mouth_corner_height(renderer, draw(renderer, mouthFrownLeft=1.0, mouthFrownRight=1.0))
    assert smile > neutral + 5 and frown < neutral - 5


def _mouth_width(renderer, img):
    xs = np.nonzero(luminance(crop(img, renderer.mouth_box())) < 80)[1]
    return xs.max() - xs.min()


def test_pucker_narrows_and_stretch_widens_the_mouth(renderer):
    neutral = _mouth_width(renderer, draw(renderer))
    assert _mouth_width(renderer, draw(renderer, mouthPucker=1.0)) < 0.7 * neutral
    assert _mouth_width(renderer, draw(renderer, mouthStretchLeft=1.0, mouthStretchRight=1.0)) > 1.2 * neutral


def test_funnel_opens_a_rounded_mouth(renderer):
    img = draw(renderer, mouthFunnel=1.0)
    box = renderer.mouth_box()
    assert dark_area(img, box) > 2 * dark_area(draw(renderer), box)
    assert _mouth_width(renderer, img) < _mouth_width(renderer, draw(renderer))


def _brow_height(renderer, img):
    x0, y0, x1, _ = renderer.eye_box("left")
    region = colour_mask(img[: y0, x0:x1], renderer.feature_colour)
    return -np.nonzero(region)[0].mean()  # higher brows -> larger value


def test_brow_channels_raise_and_lower_the_brows(renderer):
    neutral = _brow_height(renderer, draw(renderer))
    assert _brow_height(renderer, draw(renderer, browInnerUp=1.0)) > neutral + 2
    assert _brow_height(renderer, draw(renderer, browOuterUpLeft=1.0)) > neutral + 2
    assert _brow_height(renderer, draw(renderer, browDownLeft=1.0)) < neutral - 2


def test_cheek_squint_draws_cheeks_and_narrows_the_eye(renderer):
    img = draw(renderer, cheekSquintLeft=1.0)
    assert colour_mask(img, renderer.cheek_colour).sum() > 100
    assert colour_mask(draw(renderer), renderer.cheek_colour).sum() == 0
    white = lambda im: colour_mask(crop(im, renderer.eye_box("left")), renderer.eye_colour).sum()
    assert white(img) < 0.9 * white(draw(renderer))


def test_rendering_is_deterministic():
    rng = np.random.default_rng(3)
    values = [rng.uniform(M.low, M.high).astype(np.float32) for _ in range(5)]
    a, b = StylisedFaceRenderer(), StylisedFaceRenderer()
    for v in values:
        assert np.array_equal(a.render(v), b.render(v))
    assert np.array_equal(a.render(values[0]), b.render(values[0]))


def test_returned_frames_are_not_overwritten_by_later_renders(renderer):
    first = draw(renderer, jawOpen=1.0)
    kept = first.copy()
    draw(renderer, eyeBlinkLeft=1.0)
    assert np.array_equal(first, kept)


def test_non_finite_values_render_as_neutral_and_are_counted():
    r = StylisedFaceRenderer()
    v = M.neutral()
    v[M.index("jawOpen")] = np.nan
    v[M.index("head_yaw")] = np.inf
    assert np.array_equal(r.render(v), r.render(M.neutral()))
    assert r.dropped_values == 2


def test_out_of_range_values_are_clipped(renderer):
    v = M.neutral()
    v[M.index("jawOpen")] = 7.0
    assert np.array_equal(renderer.render(v), draw(renderer, jawOpen=1.0))


def test_wrong_length_raises_value_error(renderer):
    with pytest.raises(ValueError, match="expects 28 values"):
        renderer.render(np.zeros(27, np.float32))


@pytest.mark.parametrize("kwargs", [dict(width=0), dict(height=10.5), dict(face_colour=(1, 2)),
                                    dict(background=(0, 0, 300)), dict(line_width=0.5)])
def test_bad_constructor_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        StylisedFaceRenderer(**kwargs)


def test_factory_builds_by_kind_and_rejects_unknown_kinds():
    r = make_renderer("stylised", width=64, height=48)
    assert isinstance(r, StylisedFaceRenderer) and (r.width, r.height) == (64, 48)
    with pytest.raises(ValueError, match="unknown renderer kind 'cartoon'"):
        make_renderer("cartoon")

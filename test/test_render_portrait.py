"""The photo-portrait renderer on three portraits (skimage's public-domain astronaut, smiling
with teeth, and two made from it: lips closed, mouth open): the rest image with closed lips,
the mouth's inside, eyes, head, crops and errors."""
import cv2
import numpy as np
import pytest

from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
from avatar_forcing_ros.render import make_renderer
from avatar_forcing_ros.render.portrait import (EYE_LOWER, EYE_UPPER, IRIS, LIPS_LOWER_INNER, LIPS_LOWER_OUTER,
                                                LIPS_UPPER_INNER, LIPS_UPPER_OUTER, PortraitRenderer, luminance)
from avatar_forcing_ros.render.portrait_gallery import EXPRESSIONS, gallery, sample_portraits


@pytest.fixture(scope="module")
def photos():
    return sample_portraits()


@pytest.fixture(scope="module")
def renderers(photos):
    return {name: PortraitRenderer(image=rgb) for name, rgb in photos.items()}


@pytest.fixture(scope="module")
def renderer(renderers):
    return renderers["astronaut"]


def draw(renderer, **channels):
    return renderer.render(M.from_dict(channels))


def polygon(renderer, contour, lm=None):
    lm = renderer.landmarks if lm is None else lm
    mask = np.zeros((renderer.height, renderer.width), np.uint8)
    cv2.fillPoly(mask, [np.round(lm[contour, :2]).astype(np.int32)], 1)
    return mask.astype(bool)


def mouth_mask(renderer, lm=None):
    """Inside the outer lip contour."""
    return polygon(renderer, LIPS_UPPER_OUTER + LIPS_LOWER_OUTER[::-1], lm)


def mouth_box(renderer):
    """Around the lips of the rest image, with room below for the dropped jaw."""
    lm = renderer.landmarks[LIPS_LOWER_OUTER, :2]
    D = renderer.eye_distance
    x0, x1 = lm[:, 0].min() - 0.2 * D, lm[:, 0].max() + 0.2 * D
    y0, y1 = lm[:, 1].min() - 0.4 * D, lm[:, 1].max() + 0.7 * D
    return int(x0), int(y0), int(x1), int(y1)


def dark_pixels(img, mask, renderer):
    """Pixels under ``mask`` much darker than the face's skin: the inside of a mouth."""
    return int((luminance(img)[mask] < 0.4 * renderer.mouth.skin_luminance).sum())


def eye_mask(renderer, side):
    """Pixels inside the open eye's contour, shrunk by 2 px to stay clear of the lash line."""
    mask = polygon(renderer, EYE_UPPER[side] + EYE_LOWER[side][::-1]).astype(np.uint8)
    return cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)


# ------------------------------------------------------------------ the photos' mouth states
def test_mouth_state_is_read_from_each_photo(renderers):
    states = {name: r.mouth.state for name, r in renderers.items()}
    assert states == {"astronaut": "teeth", "closed": "closed", "open": "teeth"}
    gaps = {name: r.mouth.gap.max() / r.eye_distance for name, r in renderers.items()}
    assert gaps["closed"] < 0.05 < gaps["astronaut"] < gaps["open"]


def test_sample_photos_cover_sizes_and_off_centre_faces(photos, renderers):
    assert photos["closed"].shape == (380, 300, 3) and photos["open"].shape == (800, 1024, 3)
    for name in ("closed", "open"):
        h, w = photos[name].shape[:2]
        face_x = renderers[name].photo_landmarks[1, 0]  # in the crop; the photo's own face is off-centre:
        assert 0.2 * renderers[name].width < face_x < 0.8 * renderers[name].width
    # the sample photos' faces sit off their centres (left in "closed", right in "open")
    from avatar_forcing_ros.render.portrait import detect_face_mesh
    assert detect_face_mesh(photos["closed"], "closed")[1, 0] < 0.45 * 300
    assert detect_face_mesh(photos["open"], "open")[1, 0] > 0.55 * 1024


# ------------------------------------------------------------------ lips closed at rest
@pytest.mark.parametrize("name", ["astronaut", "closed", "open"])
def test_rest_frame_has_closed_lips_without_dark_mouth_pixels(renderers, name):
    r = renderers[name]
    rest = draw(r)
    assert np.array_equal(rest, r.base)
    # the photo's own lips (astronaut and open: apart) vs the rest image's (met)
    inner = LIPS_UPPER_INNER + LIPS_LOWER_INNER[::-1]
    assert np.allclose(r.landmarks[LIPS_UPPER_INNER, :2], r.landmarks[LIPS_LOWER_INNER, :2])
    assert dark_pixels(rest, mouth_mask(r), r) <= 0.002 * r.eye_distance ** 2
    if name != "closed":
        photo_inside = polygon(r, inner, r.photo_landmarks)
        assert photo_inside.sum() > 0.05 * r.eye_distance ** 2  # the photo's mouth was open


def test_photo_with_a_dark_open_mouth_closes_and_gets_made_teeth(renderers):
    # the open-mouth portrait with its teeth painted over: a mouth open on darkness
    r = renderers["open"]
    photo = r.photo.copy()
    inside = polygon(r, LIPS_UPPER_INNER + LIPS_LOWER_INNER[::-1], r.photo_landmarks)
    photo[cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)] = (40, 14, 16)
    dark_mouth = PortraitRenderer(image=photo)
    assert dark_mouth.mouth.state == "open" and dark_mouth.mouth.upper_teeth_px == 0
    assert dark_pixels(dark_mouth.base, mouth_mask(dark_mouth), dark_mouth) <= 0.002 * dark_mouth.eye_distance ** 2
    moved = dark_mouth.moved_landmarks(M.from_dict({"jawOpen": 0.5}).astype(np.float64))
    below_lip = moved[13] + [0, 0.04 * dark_mouth.eye_distance]
    teeth = draw(dark_mouth, jawOpen=0.5)[int(below_lip[1]), int(below_lip[0])]
    assert luminance(teeth[None].astype(np.uint8))[0] > 0.6 * dark_mouth.mouth.skin_luminance


def test_rest_frame_shows_no_teeth_of_a_smiling_photo(renderer):
    r = renderer
    inside = polygon(r, LIPS_UPPER_INNER + LIPS_LOWER_INNER[::-1], r.photo_landmarks)
    saturation = lambda img: cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1]  # noqa: E731
    teeth = lambda img: ((luminance(img) > r.mouth.skin_luminance)  # noqa: E731
                         & (saturation(img) < 80))[inside].mean()
    assert teeth(r.photo) > 0.25 and teeth(r.base) < 0.05


# ------------------------------------------------------------------ the mouth opening
def test_jaw_open_adds_dark_mouth_pixels(renderer):
    x0, y0, x1, y1 = mouth_box(renderer)
    box = np.zeros((renderer.height, renderer.width), bool)
    box[y0:y1, x0:x1] = True
    areas = [dark_pixels(draw(renderer, jawOpen=j), box, renderer) for j in (0.0, 0.5, 1.0)]
    assert areas[0] < areas[1] < areas[2], areas
    assert areas[2] > areas[0] + 0.15 * renderer.eye_distance ** 2, areas


def test_jaw_open_moves_the_chin_down(renderer):
    img = draw(renderer, jawOpen=1.0).astype(np.int16)
    changed = np.abs(img - renderer.base).sum(2) > 30
    chin_y = renderer.landmarks[152, 1]
    assert changed[int(chin_y):int(chin_y + 0.4 * renderer.eye_distance)].any()


def test_cavity_is_shaded_darkest_at_the_back(renderer):
    r = renderer
    img = draw(r, jawOpen=1.0)
    moved = r.moved_landmarks(M.from_dict({"jawOpen": 1.0}).astype(np.float64))
    cavity = polygon(r, LIPS_UPPER_INNER + LIPS_LOWER_INNER[::-1], np.column_stack([moved, np.zeros(len(moved))]))
    core = cv2.erode(cavity.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    rim = cavity & ~core
    lum = luminance(img)
    assert lum[core].min() < 40            # a dark back of the mouth ...
    assert lum[cavity].std() > 8           # ... shaded, not one flat colour
    assert np.median(lum[rim]) > np.median(lum[core])  # lighter near the lips


def teeth_patch(r):
    """The central upper teeth of the photo, a patch of about 0.4 x 0.1 interocular distances."""
    D = r.eye_distance
    x = r.photo_landmarks[13, 0]
    y = r.photo_landmarks[13, 1] + 0.02 * D
    return r.photo[int(y):int(y + 0.1 * D), int(x - 0.2 * D):int(x + 0.2 * D)]


def edges(img):
    """Horizontal gradient: the gaps between teeth, whatever the light."""
    gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)


def best_match(img, patch, box):
    """Highest normalised correlation of the patch's tooth edges anywhere in the box."""
    x0, y0, x1, y1 = box
    return float(cv2.matchTemplate(edges(img[y0:y1, x0:x1]), edges(patch), cv2.TM_CCOEFF_NORMED).max())


def test_the_smiling_photos_own_teeth_appear_when_the_mouth_opens(renderers):
    r = renderers["astronaut"]
    patch = teeth_patch(r)
    assert best_match(draw(r, jawOpen=0.4), patch, mouth_box(r)) > 0.75
    assert best_match(draw(r), patch, mouth_box(r)) < 0.65  # lips closed: no teeth
    # the closed-mouth photo's teeth are made, not the astronaut's
    other = renderers["closed"]
    scaled = cv2.resize(patch, None, fx=other.eye_distance / r.eye_distance, fy=other.eye_distance / r.eye_distance)
    assert best_match(draw(other, jawOpen=0.4), scaled, mouth_box(other)) < 0.65


def test_closed_photo_gets_teeth_in_its_own_light(renderers):
    r = renderers["closed"]
    img = draw(r, jawOpen=0.5)
    moved = r.moved_landmarks(M.from_dict({"jawOpen": 0.5}).astype(np.float64))
    upper = moved[LIPS_UPPER_INNER]
    D = r.eye_distance
    x = np.arange(int(upper[3, 0]), int(upper[7, 0]))
    y = np.interp(x, upper[:, 0], upper[:, 1]) + 0.05 * D
    teeth = img[y.round().astype(int), x].astype(np.float32)
    sclera = 0.5 * (r.eyes["Left"].sclera_colour + r.eyes["Right"].sclera_colour)
    assert luminance(teeth).mean() > 1.5 * luminance(np.asarray(r.interior.back_colour)[None])[0]
    assert np.abs(teeth.mean(0) - sclera).max() < 60  # the colour of the photo's eye whites, give or take light


def test_upper_teeth_stay_with_the_head_lower_lip_goes_with_the_jaw(renderer):
    r = renderer
    patch = teeth_patch(r)
    rows = []
    for j in (0.4, 1.0):
        res = cv2.matchTemplate(edges(draw(r, jawOpen=j)), edges(patch), cv2.TM_CCOEFF_NORMED)
        rows.append(np.unravel_index(res.argmax(), res.shape)[0])
    assert abs(rows[1] - rows[0]) <= 0.04 * r.eye_distance  # teeth did not drop with the jaw
    lower_lip = [r.moved_landmarks(M.from_dict({"jawOpen": j}).astype(np.float64))[14, 1] for j in (0.4, 1.0)]
    assert lower_lip[1] - lower_lip[0] > 0.2 * r.eye_distance


# ------------------------------------------------------------------ eyes
def iris_centre_x(img, renderer, side):
    mask = eye_mask(renderer, side)
    lum = luminance(img)
    dark = mask & (lum < np.percentile(lum[mask], 30))
    return np.nonzero(dark)[1].mean()


def test_gaze_moves_the_irises_not_the_lids(renderer):
    for side in ("Left", "Right"):
        centre = iris_centre_x(renderer.base, renderer, side)
        right = iris_centre_x(draw(renderer, gaze_yaw=0.5), renderer, side)
        left = iris_centre_x(draw(renderer, gaze_yaw=-0.5), renderer, side)
        assert left < centre - 2 and right > centre + 2, (left, centre, right)
    v = M.from_dict({"gaze_yaw": 0.5}).astype(np.float64)
    lids = EYE_UPPER["Left"] + EYE_LOWER["Left"]
    assert np.allclose(renderer.moved_landmarks(v)[lids], renderer.landmarks[lids, :2])


def test_gaze_leaves_the_eye_whites_clean(renderer):
    # where the iris was, the white shows: no dark disc left behind
    img = draw(renderer, gaze_yaw=0.6)
    for side in ("Left", "Right"):
        c = renderer.landmarks[IRIS[side][0], :2]
        r = renderer.eyes[side].radius
        x0 = int(c[0] - 0.9 * r)
        patch = luminance(img[int(c[1]) - 1:int(c[1]) + 2, x0:x0 + 2])
        assert patch.mean() > 0.6 * luminance(renderer.eyes[side].sclera_colour[None].astype(np.float32))[0]


@pytest.mark.parametrize("name", ["astronaut", "closed", "open"])
def test_full_blink_covers_each_eye_with_textured_lid(renderers, name):
    r = renderers[name]
    dark = lambda img, mask: (luminance(img)[mask] < 0.5 * r.mouth.skin_luminance).mean()  # noqa: E731
    for side in ("Left", "Right"):
        mask = eye_mask(r, side)
        shut = draw(r, **{"eyeBlink" + side: 1.0})
        # the iris (about half the open eye, dark) is gone under the lid ...
        assert dark(r.base, mask) > 0.4 and dark(shut, mask) < 0.2
        # ... and the lid keeps its texture and lashes: not one flat colour
        assert luminance(shut)[mask].std() > 8


def test_blink_of_one_eye_leaves_the_other_open(renderer):
    img = draw(renderer, eyeBlinkLeft=1.0)
    right = eye_mask(renderer, "Right")
    assert np.array_equal(img[right], renderer.base[right])
    assert renderer.landmarks[EYE_UPPER["Left"], 0].mean() > renderer.landmarks[EYE_UPPER["Right"], 0].mean()


# ------------------------------------------------------------------ head, crop, frame
def test_neutral_frame_is_the_rest_image(renderer):
    img = draw(renderer)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    assert np.array_equal(img, renderer.base)


def test_crop_frames_the_face(renderers):
    for r in renderers.values():
        lm = r.landmarks
        assert 0.3 * r.width < r.face_width < 0.75 * r.width
        assert lm[:, 0].min() > 0 and lm[:, 0].max() < r.width
        assert lm[:, 1].min() > 0 and lm[:, 1].max() < r.height


def test_small_photo_works_like_a_large_one():
    from skimage import data
    small = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    r = PortraitRenderer(image=small)
    assert r.mouth.state == "teeth"
    assert dark_pixels(r.base, mouth_mask(r), r) <= 0.002 * r.eye_distance ** 2
    x0, y0, x1, y1 = mouth_box(r)
    box = np.zeros((r.height, r.width), bool)
    box[y0:y1, x0:x1] = True
    assert dark_pixels(draw(r, jawOpen=1.0), box, r) > 0.15 * r.eye_distance ** 2


def test_tight_photo_is_zoomed_not_padded(renderers):
    # the 300x380 "closed" photo is narrower than the face-centred window: no replicated
    # border columns (they would make rows of identical pixels at the frame's sides)
    base = renderers["closed"].base.astype(np.int16)
    for side in (base[:, :6], base[:, -6:]):
        assert not (np.diff(side, axis=1) == 0).all(axis=(0, 2)).any()


def test_border_and_shoulders_stay_still(renderer):
    img = draw(renderer, head_yaw=0.4, head_pitch=0.2, jawOpen=1.0, mouthSmileLeft=1.0, browInnerUp=1.0)
    diff = np.abs(img.astype(np.int16) - renderer.base).max(2)
    band = np.ones_like(diff, bool)
    band[12:-12, 12:-12] = False
    assert diff[band].mean() < 1.0 and np.percentile(diff[band], 99) <= 8
    shoulders = int(renderer.landmarks[152, 1] + 0.7 * renderer.face_width)
    assert diff[shoulders:].mean() < 1.5


def test_head_turn_moves_hair_less_than_face(renderer):
    # parallax: the face turns fully, the hair ring partly, the background ring not at all
    v = M.from_dict({"head_yaw": 0.35}).astype(np.float64)
    face_dx = renderer.moved_landmarks(v)[1, 0] - renderer.landmarks[1, 0]
    hair_dx = np.abs(renderer.moved_hair(v)[:, 0] - renderer.hair[:, 0]).max()
    assert face_dx > 5 and 0 < hair_dx < face_dx


def folds(renderer, channels):
    """Pixels where the warp's Jacobian is near zero or negative (the image turned over
    itself), and its largest step between neighbouring pixels (a tear)."""
    mx, my = renderer.warp_maps(M.from_dict(channels).astype(np.float64))
    dxx, dxy = np.diff(mx, axis=1)[:-1], np.diff(mx, axis=0)[:, :-1]
    dyx, dyy = np.diff(my, axis=1)[:-1], np.diff(my, axis=0)[:, :-1]
    step = max(np.abs(a).max() for a in (dxx, dxy, dyx, dyy))
    return (dxx * dyy - dxy * dyx) < 0.1, step


@pytest.mark.parametrize("channels", [{"head_yaw": -0.35}, {"head_yaw": 0.35}, {"head_pitch": 0.3, "head_roll": 0.2},
                                      {"head_yaw": 0.2, "head_tx": 0.05, "head_scale": 0.1}])
def test_head_turn_has_no_tears_or_folds(renderer, channels):
    folded, step = folds(renderer, channels)
    assert not folded.any() and step < 3.0


@pytest.mark.parametrize("channels", [{"jawOpen": 1.0, "head_yaw": 0.3}, {"jawOpen": 0.5, "mouthSmileLeft": 1.0},
                                      {"mouthFunnel": 1.0, "mouthPucker": 1.0, "jawOpen": 0.3}])
def test_mouth_folds_stay_under_the_drawn_inside(renderer, channels):
    # the lips part where the rest image has none: squeezed to nothing, hidden by the interior
    folded, _ = folds(renderer, channels)
    moved = renderer.moved_landmarks(M.from_dict(channels).astype(np.float64))
    cavity = polygon(renderer, LIPS_UPPER_INNER + LIPS_LOWER_INNER[::-1], np.column_stack([moved, moved[:, 0]]))
    cavity = cv2.dilate(cavity.astype(np.uint8), np.ones((5, 5), np.uint8))[:-1, :-1].astype(bool)
    assert folded.any() and not (folded & ~cavity).any()


def test_yaw_sign_turns_the_nose_toward_the_image_side(renderer):
    nose = renderer.landmarks[1, 0]
    assert renderer.moved_landmarks(M.from_dict({"head_yaw": 0.3}).astype(np.float64))[1, 0] > nose + 3
    assert renderer.moved_landmarks(M.from_dict({"head_yaw": -0.3}).astype(np.float64))[1, 0] < nose - 3


def test_rendering_is_deterministic(renderer):
    v = M.from_dict({"head_yaw": 0.2, "jawOpen": 0.6, "eyeBlinkRight": 0.7, "mouthSmileLeft": 0.5, "gaze_yaw": 0.3})
    assert np.array_equal(renderer.render(v), renderer.render(v))


def test_non_finite_values_render_as_rest_and_are_counted(renderer):
    before = renderer.dropped_values
    v = M.neutral()
    v[M.index("jawOpen")] = np.nan
    assert np.array_equal(renderer.render(v), renderer.base)
    assert renderer.dropped_values == before + 1


def test_wrong_length_raises_value_error(renderer):
    with pytest.raises(ValueError, match="expects 28 values"):
        renderer.render(np.zeros(30, np.float32))


@pytest.mark.parametrize("size", [(320, 256), (256, 256), (1024, 1024)])
def test_output_size_follows_the_parameters(size):
    w, h = size
    r = make_renderer("portrait", width=w, height=h)
    img = r.render(M.from_dict({"jawOpen": 0.5, "eyeBlinkLeft": 0.5, "gaze_yaw": 0.3}))
    assert img.shape == (h, w, 3)
    assert r.mouth.state == "teeth"


def test_gallery_has_a_cell_per_portrait_and_expression(renderers):
    small = {name: PortraitRenderer(image=r.photo, width=96, height=96) for name, r in list(renderers.items())[:2]}
    grid = gallery(small, tile=48)
    assert grid.shape[1] == 84 + 48 * len(EXPRESSIONS) and grid.shape[0] == 22 + 48 * 2


# ------------------------------------------------------------------ bad input
def test_portrait_without_a_face_names_the_file(tmp_path):
    path = tmp_path / "wall.png"
    gradient = np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1))
    cv2.imwrite(str(path), cv2.merge([gradient, gradient, gradient]))
    with pytest.raises(ValueError, match="no face found in portrait .*wall.png"):
        PortraitRenderer(image_path=str(path))


def test_portrait_with_two_faces_is_rejected(tmp_path, photos):
    one = photos["astronaut"][:, 100:400]
    two = np.concatenate([one, one], 1)
    path = tmp_path / "pair.png"
    cv2.imwrite(str(path), cv2.cvtColor(two, cv2.COLOR_RGB2BGR))
    with pytest.raises(ValueError, match="2 faces found in portrait .*pair.png"):
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

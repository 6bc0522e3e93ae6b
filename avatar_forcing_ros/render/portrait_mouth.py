"""The portrait's mouth: its state in the photo, lips closed at rest, and the inside when open.

At load time ``analyse_mouth`` reads the photo's mouth from its landmarks and pixels: closed
lips, lips apart showing teeth, or lips apart showing a dark mouth. ``close_lips`` then makes
the rest image: the upper lip moved down and the lower lip and jaw up until the inner lips meet,
each lip warped from its own texture (two warps, one per side of the lip line, joined on it),
so at jawOpen = 0 the lips are closed whatever the photo showed.

``MouthInterior`` draws what appears between the lips when the motion opens them, in a frame
aligned with the mouth (s along the lip line from corner to corner, t across it):
a cavity shaded from dark at the back to the lips' own colour near them, a tongue for wide
vowels, lower teeth that move with the jaw (the lower lip) and upper teeth that stay with the
head (the upper lip). The teeth are the photo's own when it shows them, sampled along its lips;
otherwise they are made at load time from the colour and light of the photo's eye whites.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LIPS_UPPER_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIPS_LOWER_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
LIPS_UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_LOWER_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
CHEEKS = [205, 425, 50, 280]
MOUTH_STATES = ("closed", "teeth", "open")

_TEX_W, _TEX_H = 160, 40  # teeth textures: s across, depth from the lip down


def luminance(rgb):
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _polygon_mask(shape, pts, dilate=0):
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    if dilate > 0:
        mask = cv2.dilate(mask, np.ones((2 * dilate + 1,) * 2, np.uint8))
    elif dilate < 0:
        mask = cv2.erode(mask, np.ones((-2 * dilate + 1,) * 2, np.uint8))
    return mask.astype(bool)


@dataclass
class MouthAnalysis:
    state: str                  # one of MOUTH_STATES
    gap: np.ndarray             # (11,) inner-lip gap per column, pixels (>= 0)
    upper_teeth_px: float       # how far the photo's upper teeth reach below the upper lip (0: none)
    lower_teeth_px: float       # how far its lower teeth reach above the lower lip (0: none)
    skin_luminance: float

    def describe(self):
        return (f"mouth {self.state} (gap {self.gap.max():.1f} px, upper teeth {self.upper_teeth_px:.1f} px, "
                f"lower teeth {self.lower_teeth_px:.1f} px)")


def refine_inner_lips(rgb, lm, eye_distance):
    """Landmarks with the inner lip edges moved onto the lips where the face mesh put them
    inside the mouth.

    On an open mouth the mesh sometimes puts the lower lip's inner edge inside the dark
    cavity, or the upper lip's on the teeth. Where the pixels just below a lower-inner-lip
    point are still dark, that point moves down to where the dark ends (the outer edge keeps
    at least a lip's width below it); where those just above an upper-inner-lip point are
    teeth or dark, it moves up to where they end."""
    out = lm.copy()
    up, lo = lm[LIPS_UPPER_INNER, :2], lm[LIPS_LOWER_INNER, :2]
    if (lo[:, 1] - up[:, 1]).max() < 0.05 * eye_distance:
        return out
    lum = luminance(rgb)
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
    skin = _skin_luminance(rgb, lm)
    dark = lum < 0.45 * skin
    teeth = (lum > max(1.02 * skin, 70.0)) & (sat < 70)  # brighter and greyer than skin or lips
    h, w = lum.shape

    def run(mask, x, y, step, limit):
        xi, yi = int(round(x)), int(round(y))
        if not (0 <= xi < w and 0 <= yi < h):
            return 0
        n = 0
        while n < limit and 0 <= yi + step * n < h and mask[yi + step * n, xi]:
            n += 1
        return n

    drop = np.zeros(len(LIPS_LOWER_INNER))
    lift = np.zeros(len(LIPS_UPPER_INNER))
    for i in range(1, len(lo) - 1):
        drop[i] = run(dark, *lo[i], +1, int(0.3 * eye_distance))
        lift[i] = run(dark | teeth, *up[i], -1, int(0.08 * eye_distance))
    out[LIPS_LOWER_INNER, 1] += drop
    # the outer edge stays where the mesh saw it unless that leaves less than a thin lip
    outer = np.array(LIPS_LOWER_OUTER[1:-1])
    inner_y = np.interp(lm[outer, 0], lo[:, 0], out[LIPS_LOWER_INNER, 1])
    out[outer, 1] = np.maximum(lm[outer, 1], inner_y + 0.08 * eye_distance * (drop.max() > 0))
    out[LIPS_UPPER_INNER, 1] -= lift
    return out


def _skin_luminance(rgb, lm):
    ys = np.clip(lm[CHEEKS, 1].round().astype(int), 0, rgb.shape[0] - 1)
    xs = np.clip(lm[CHEEKS, 0].round().astype(int), 0, rgb.shape[1] - 1)
    return float(np.median(luminance(rgb[ys, xs])))


def analyse_mouth(rgb, lm, eye_distance) -> MouthAnalysis:
    """The photo's mouth state from its inner-lip landmarks and the pixels between them."""
    up, lo = lm[LIPS_UPPER_INNER, :2], lm[LIPS_LOWER_INNER, :2]
    gap = np.maximum(lo[:, 1] - up[:, 1], 0.0)
    skin = _skin_luminance(rgb, lm)
    if gap.max() < 0.05 * eye_distance:
        return MouthAnalysis("closed", gap, 0.0, 0.0, skin)
    inside = _polygon_mask(rgb.shape, np.concatenate([up, lo[::-1]]))
    lum = luminance(rgb)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    teeth = inside & (lum > max(0.7 * skin, 70.0)) & (hsv[..., 1] < 110)
    teeth = cv2.morphologyEx(teeth.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool) & inside
    # per central column: how far the teeth run from each lip into the mouth
    x0, x1 = up[0, 0], up[-1, 0]
    reach_up, reach_lo = [], []
    for x in np.linspace(x0 + 0.3 * (x1 - x0), x0 + 0.7 * (x1 - x0), 9).round().astype(int):
        yu = int(np.ceil(np.interp(x, up[:, 0], up[:, 1])))
        yl = int(np.floor(np.interp(x, lo[:, 0], lo[:, 1])))
        col = teeth[yu:yl + 1, x]
        if col.size < 3:
            continue
        reach_up.append(_run_length(col[:: 1]))
        reach_lo.append(_run_length(col[::-1]))
    up_px = float(np.median(reach_up)) if reach_up else 0.0
    lo_px = float(np.median(reach_lo)) if reach_lo else 0.0
    if up_px + lo_px > gap.max():  # teeth from lip to lip: the lower teeth hide behind the upper ones
        lo_px = 0.0 if up_px >= lo_px else lo_px
        up_px = 0.0 if lo_px else up_px
    min_teeth = 0.03 * eye_distance
    up_px = up_px if up_px >= min_teeth else 0.0
    lo_px = lo_px if lo_px >= min_teeth else 0.0
    return MouthAnalysis("teeth" if up_px or lo_px else "open", gap, up_px, lo_px, skin)


def _run_length(col):
    """Pixels from the start of a boolean column to the last True of its first run (a gap of
    one pixel does not end the run); 0 when the run does not start within 3 pixels."""
    n = misses = 0
    for i, v in enumerate(col):
        if v:
            n, misses = i + 1, 0
            continue
        misses += 1
        if (n > 0 and misses > 1) or (n == 0 and i >= 2):
            break
    return n


def closed_lip_landmarks(lm, analysis, eye_distance, upper_share=0.4):
    """Landmarks with the inner lips met: the upper lip down by ``upper_share`` of the gap, the
    lower lip and the jaw up by the rest. Returns (478, 3)."""
    out = lm.copy()
    gap = analysis.gap
    if gap.max() <= 0:
        return out
    up_x = lm[LIPS_UPPER_INNER, 0]
    xy = lm[:, :2]
    g_at = lambda x: np.interp(x, up_x, gap)  # noqa: E731 - gap profile along the mouth
    g_mid = float(gap.max())
    mouth = 0.5 * (lm[13, :2] + lm[14, :2])
    D = eye_distance
    # the jaw rises like the renderer's jawOpen pattern drops it, the lips per column
    below = np.clip((xy[:, 1] - mouth[1]) / (0.3 * D), 0, 1) * np.exp(-((xy[:, 0] - mouth[0]) / (1.1 * D)) ** 2)
    out[:, 1] -= (1 - upper_share) * g_mid * below
    lower = LIPS_LOWER_INNER[1:-1] + LIPS_LOWER_OUTER[1:-1]
    out[lower, 1] = lm[lower, 1] - (1 - upper_share) * g_at(lm[lower, 0])
    out[LIPS_UPPER_INNER[1:-1], 1] = lm[LIPS_UPPER_INNER[1:-1], 1] + upper_share * gap[1:-1]
    upper_outer = LIPS_UPPER_OUTER[1:-1]
    out[upper_outer, 1] = lm[upper_outer, 1] + 0.6 * upper_share * g_at(lm[upper_outer, 0])
    out[LIPS_LOWER_INNER[1:-1], :2] = out[LIPS_UPPER_INNER[1:-1], :2]  # met exactly
    return out


def close_lips(rgb, lm, closed_lm, warp, control, anchors, eye_distance):
    """The rest image: ``rgb`` warped so its landmarks move to ``closed_lm``.

    Above the lip line the warp ignores the lower inner lip, below it the upper inner lip, so
    each side samples only its own lip's texture; the two halves join on the line where the
    lips meet (the photo's teeth and mouth are no longer seen)."""
    control = np.asarray(control)
    anchor_xy = np.asarray(anchors, np.float64)
    # each lip is sampled from a little inside its inner edge, clear of the teeth's edge pixels
    margin = 0.045 * eye_distance
    halves = []
    for drop, own, into_lip in ((LIPS_LOWER_INNER[1:-1], LIPS_UPPER_INNER[1:-1], -margin),
                                (LIPS_UPPER_INNER[1:-1], LIPS_LOWER_INNER[1:-1], margin)):
        keep = control[~np.isin(control, drop)]
        dst = np.concatenate([closed_lm[keep, :2], anchor_xy])
        src_lm = lm[:, :2].copy()
        src_lm[own, 1] += into_lip
        src = np.concatenate([src_lm[keep], anchor_xy])
        mx, my = warp.backward_map(dst, src)
        halves.append(cv2.remap(rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    line = closed_lm[LIPS_UPPER_INNER, :2]
    h, w = rgb.shape[:2]
    # below the lip line (drawn on, sideways, past the corners): the lower warp. Sharp along
    # the lip line itself, feathered elsewhere, where the two warps differ only smoothly.
    reach = 0.6 * eye_distance
    ext = np.concatenate([[line[0] - [reach, 0]], line, [line[-1] + [reach, 0]]])
    below = np.concatenate([ext, [[ext[-1, 0], h + 10], [ext[0, 0], h + 10]]])
    hard = _polygon_mask(rgb.shape, below).astype(np.float32)
    soft = cv2.GaussianBlur(hard, (0, 0), 0.12 * eye_distance)
    near_line = _polygon_mask(rgb.shape, np.concatenate([line - [0, 0.12 * eye_distance],
                                                         line[::-1] + [0, 0.12 * eye_distance]]))
    weight = np.where(near_line, hard, soft)[..., None]
    out = (halves[0] * (1 - weight) + halves[1] * weight).round().astype(np.uint8)
    # what is left of the mouth's inside along the lip line (dark corners, teeth edges the
    # face mesh did not count as mouth) is filled in from the lips around it
    band = np.zeros((h, w), np.uint8)
    ends = np.concatenate([[line[0] - [0.15 * eye_distance, 0]], line, [line[-1] + [0.15 * eye_distance, 0]]])
    cv2.polylines(band, [np.round(ends).astype(np.int32)], False, 1, max(3, int(round(0.05 * eye_distance))))
    skin = _skin_luminance(rgb, lm)
    lum = luminance(out)
    sat = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)[..., 1]
    leftover = band.astype(bool) & ((lum < 0.45 * skin) | ((lum > 1.02 * skin) & (sat < 70)))
    if leftover.any():
        hole = cv2.dilate(leftover.astype(np.uint8), np.ones((3, 3), np.uint8))
        out = cv2.inpaint(out, hole, max(2.0, 0.05 * eye_distance), cv2.INPAINT_TELEA)
    out = out.astype(np.float32)
    # a soft contact shadow along the line where the lips meet
    shade = np.zeros((h, w), np.float32)
    cv2.polylines(shade, [np.round(line * 16).astype(np.int32)], False, 1.0,
                  max(1, int(round(0.015 * eye_distance))), cv2.LINE_AA, 4)
    shade = cv2.GaussianBlur(shade, (0, 0), max(0.5, 0.008 * eye_distance))
    out = (out * (1 - 0.3 * shade[..., None])).round().clip(0, 255).astype(np.uint8)
    return out


def _sample_strip(rgb, lm, lip_idx, reach_px, direction):
    """(TEX_H, TEX_W, 3) texture sampled from ``rgb`` along an inner lip, ``reach_px`` deep
    (direction +1: downward from the upper lip, -1: upward from the lower lip)."""
    lip = lm[lip_idx, :2]
    s = np.linspace(0.0, 1.0, _TEX_W, dtype=np.float64)
    x = lip[0, 0] + s * (lip[-1, 0] - lip[0, 0])
    y0 = np.interp(x, lip[:, 0], lip[:, 1])
    v = (np.arange(_TEX_H, dtype=np.float64) + 0.5) / _TEX_H
    mx = np.broadcast_to(x[None], (_TEX_H, _TEX_W)).astype(np.float32)
    my = (y0[None] + direction * (0.5 + v[:, None] * reach_px)).astype(np.float32)
    return cv2.remap(rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def synthetic_teeth(colour, rng_seed=0):
    """A (TEX_H, TEX_W, 3) teeth texture of a given base colour: incisors to premolars, darker
    gaps and a shadow under the lip; corners are darkened when drawn, not here."""
    s = np.linspace(-1, 1, _TEX_W)
    v = (np.arange(_TEX_H) + 0.5) / _TEX_H
    # tooth boundaries in s (centre line, incisors wide, back teeth narrow)
    widths = [0.3, 0.22, 0.19, 0.16, 0.14, 0.12]  # of the half-mouth: incisors, canine, premolars
    edges = np.cumsum([0] + widths)
    edges = np.concatenate([-edges[::-1], edges[1:]])
    d_edge = np.min(np.abs(s[:, None] - edges[None]), axis=1)
    gaps = np.exp(-(d_edge / 0.01) ** 2)                                     # (W,)
    shade = 0.78 + 0.22 * np.clip(v / 0.35, 0, 1)                            # shadow under the lip
    tip = 1 - 0.12 * np.clip((v - 0.75) / 0.25, 0, 1)                        # slightly translucent tips
    light = shade[:, None] * tip[:, None] * (1 - 0.2 * gaps[None] * (0.3 + 0.7 * v[:, None]))
    tex = np.asarray(colour, np.float32)[None, None] * light[..., None]
    return tex.clip(0, 255).astype(np.uint8)


class MouthInterior:
    """Draws the inside of the mouth between moved inner lips (see the module docstring)."""

    def __init__(self, rgb, lm, analysis, eye_distance, sclera_colour, lip_colour):
        D = self.eye_distance = float(eye_distance)
        self.analysis = analysis
        src_width = float(abs(lm[308, 0] - lm[78, 0]))
        self.lip_colour = np.asarray(lip_colour, np.float32)
        # made teeth: the eye whites' colour and light, a touch warmer
        sclera = np.asarray(sclera_colour, np.float32)
        teeth_colour = ((0.6 * sclera + 0.4 * sclera.mean()) * np.array([1.08, 1.06, 1.0], np.float32)).clip(0, 255)
        if analysis.upper_teeth_px > 0:
            self.upper_tex = _sample_strip(rgb, lm, LIPS_UPPER_INNER, analysis.upper_teeth_px, +1)
            self.upper_depth = analysis.upper_teeth_px / max(src_width, 1.0)  # in mouth widths
            teeth_colour = np.median(self.upper_tex[:, _TEX_W // 3: 2 * _TEX_W // 3].reshape(-1, 3), axis=0)
        else:
            self.upper_tex = synthetic_teeth(teeth_colour)
            self.upper_depth = 0.11 * D / max(src_width, 1.0)
        if analysis.lower_teeth_px > 0:
            self.lower_tex = _sample_strip(rgb, lm, LIPS_LOWER_INNER, analysis.lower_teeth_px, -1)
            self.lower_depth = analysis.lower_teeth_px / max(src_width, 1.0)
        else:
            self.lower_tex = (synthetic_teeth(teeth_colour) * 0.68).astype(np.uint8)  # in the upper lip's shade
            self.lower_depth = 0.06 * D / max(src_width, 1.0)
        self.teeth_colour = teeth_colour
        lum = float(luminance(np.asarray(lip_colour, np.uint8)[None, None])[0, 0])
        self.edge_colour = self.lip_colour * 0.3
        self.back_colour = np.array([30, 10, 12], np.float32) * max(0.6, min(1.4, lum / 120.0))
        self.tongue_colour = self.lip_colour * np.array([0.85, 0.5, 0.52], np.float32)

    def draw(self, frame, upper, lower, jaw_open):
        """Composite the interior into ``frame`` (in place) between the moved inner lips."""
        gap = lower[:, 1] - upper[:, 1]
        if gap.max() < 0.5:
            return
        # a little over the lips' inner edges: they carry the closed lips' contact shadow
        grow = min(1.0, gap.max() / (0.1 * self.eye_distance)) * 0.012 * self.eye_distance
        taper = np.sin(np.linspace(0, np.pi, len(gap)))[:, None] * np.array([0.0, grow])
        upper, lower = upper - taper, lower + 2 * taper
        cavity = np.concatenate([upper, lower[::-1]])
        h, w = frame.shape[:2]
        x0, y0 = np.floor(cavity.min(0)).astype(int) - 2
        x1, y1 = np.ceil(cavity.max(0)).astype(int) + 3
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        rh, rw = y1 - y0, x1 - x0
        mask = np.zeros((rh, rw), np.uint8)
        cv2.fillPoly(mask, [np.round((cavity - [x0, y0]) * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
        alpha = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32) / 255.0

        # mouth-aligned coordinates: s in [0, 1] from corner to corner, t across (down > 0)
        left, right = upper[0], upper[-1]
        axis = right - left
        width = float(np.hypot(*axis)) or 1.0
        e = axis / width
        n = np.array([-e[1], e[0]])
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        px, py = xx - left[0], yy - left[1]
        s = (px * e[0] + py * e[1]) / width
        t = px * n[0] + py * n[1]
        rel_u = upper - left
        rel_l = lower - left
        su, tu = (rel_u @ e) / width, rel_u @ n
        sl, tl = (rel_l @ e) / width, rel_l @ n
        t_up = np.interp(s, *_increasing(su, tu)).astype(np.float32)
        t_lo = np.interp(s, *_increasing(sl, tl)).astype(np.float32)
        open_h = np.maximum(t_lo - t_up, 1e-3)
        half = 0.5 * max(float((tl - tu).max()), 1.0)
        across = np.abs(2 * s - 1).clip(0, 1)

        # cavity: lip-coloured shadow at the lips, dark at the back and in the corners
        from_lip = np.minimum(t - t_up, t_lo - t).clip(0) / half
        depth = (np.clip(from_lip / 0.8, 0, 1) * (1 - across ** 2)) ** 0.8
        depth = np.maximum(depth, across ** 3 * 0.8)
        colour = self.edge_colour + (self.back_colour - self.edge_colour) * depth[..., None]

        # tongue: low in the mouth when it is wide open
        tongue = float(np.clip((jaw_open - 0.45) / 0.4, 0, 1))
        if tongue > 0:
            # a hint only: in the mouth's shadow, a rounded hump low in the middle
            top = t_lo - 0.3 * open_h
            a = np.clip((t - top) / (0.2 * open_h + 1e-3), 0, 1) * np.clip(1 - (across / 0.55) ** 2, 0, 1) * tongue
            tone = self.tongue_colour * (0.35 + 0.3 * np.clip((t_lo - t) / (0.3 * open_h + 1e-3), 0, 1))[..., None]
            colour = colour * (1 - a[..., None]) + tone * a[..., None]

        # teeth: lower with the lower lip (jaw), upper with the upper lip (head); upper drawn last
        for tex, depth_w, from_upper, span, power in ((self.lower_tex, self.lower_depth, False, 0.55, 1.0),
                                                      (self.upper_tex, self.upper_depth, True, 1.0, 0.25)):
            # the teeth's outline: deepest in the middle, none at the corners (lower: the front
            # ones only, rounded, mostly behind the lower lip)
            reach = depth_w * width * np.clip(1 - ((2 * s - 1) / span) ** 2, 0, 1) ** power
            into = (t - t_up) if from_upper else (t_lo - t)
            vis = np.clip(reach - into + 0.5, 0, 1) * np.clip(reach / 1.5, 0, 1) * (into > -1.0)
            if not from_upper:
                D = self.eye_distance  # lower teeth show once the mouth is well open
                vis = vis * min(1.0, max(0.0, (float(gap.max()) - 0.2 * D) / (0.25 * D)))
            mx = (s.clip(0, 1) * (_TEX_W - 1)).astype(np.float32)
            my = (into.clip(0) / np.maximum(reach, 1e-3) * _TEX_H).clip(0, _TEX_H - 1).astype(np.float32)
            texel = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            texel *= (1 - 0.55 * across ** 2)[..., None]  # back teeth in the corners' shadow
            colour = colour * (1 - vis[..., None]) + texel * vis[..., None]

        roi = frame[y0:y1, x0:x1]
        out = roi.astype(np.float32) * (1 - alpha[..., None]) + colour * alpha[..., None]
        roi[:] = out.round().clip(0, 255).astype(np.uint8)


def _increasing(x, y):
    order = np.argsort(x, kind="stable")
    return x[order], y[order]

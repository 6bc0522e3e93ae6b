"""Phonemes (espeak-ng mnemonics with timing) -> mouth shapes per video frame.

Each phoneme has a target mouth shape; the mouth moves toward the current target with
first-order dynamics (faster to open than to relax, fastest to close the lips for p/b/m) and
starts moving ~40 ms before the sound, as real lips anticipate the next phoneme. The result,
sampled at the video rate, is the lip-sync ground truth of the corpus.
"""
from __future__ import annotations

import numpy as np

FPS = 25
# jawOpen, mouthFunnel, mouthPucker are the evaluation targets; stretch and smile complete the
# mouth of the simulated face (lips closed = jawOpen 0 with no funnel/pucker).
VISEME_CHANNELS = ("jawOpen", "mouthFunnel", "mouthPucker", "mouthStretch", "mouthSmile")
TARGET_CHANNELS = 3

ANTICIPATION_S = 0.04
ATTACK_S = 0.025    # time constant toward a more open / more rounded shape
RELEASE_S = 0.05    # toward a more relaxed shape
CLOSURE_S = 0.012   # lips shutting for a bilabial stop must actually reach closure
STEP_S = 0.005      # internal simulation step

REST = (0.0, 0.0, 0.0, 0.0, 0.0)

# Vowel qualities by their first letter in espeak's ASCII mnemonics (shared across languages):
# jaw opening follows vowel height, o/u/y round the lips, i/e spread them.
_VOWELS = {
    "a": (0.70, 0.00, 0.00, 0.10, 0.05),
    "A": (0.72, 0.05, 0.00, 0.05, 0.00),
    "&": (0.62, 0.00, 0.00, 0.25, 0.10),   # trap
    "V": (0.50, 0.00, 0.00, 0.05, 0.00),   # strut
    "0": (0.55, 0.30, 0.15, 0.00, 0.00),   # lot
    "Q": (0.55, 0.30, 0.15, 0.00, 0.00),
    "O": (0.48, 0.50, 0.35, 0.00, 0.00),   # thought
    "o": (0.35, 0.60, 0.50, 0.00, 0.00),
    "u": (0.18, 0.50, 0.80, 0.00, 0.00),
    "U": (0.22, 0.40, 0.60, 0.00, 0.00),
    "y": (0.18, 0.40, 0.75, 0.00, 0.00),   # French u, German u-umlaut
    "Y": (0.30, 0.35, 0.55, 0.00, 0.00),   # rounded front (o-umlaut)
    "W": (0.32, 0.35, 0.45, 0.00, 0.00),
    "e": (0.42, 0.00, 0.00, 0.35, 0.15),
    "E": (0.50, 0.00, 0.00, 0.30, 0.10),
    "i": (0.18, 0.00, 0.00, 0.60, 0.25),
    "I": (0.24, 0.00, 0.00, 0.45, 0.15),
    "@": (0.35, 0.00, 0.00, 0.05, 0.00),   # schwa
    "3": (0.35, 0.20, 0.10, 0.00, 0.00),   # nurse
}
_BILABIAL = (0.0, 0.0, 0.0, 0.0, 0.0)
_CONSONANTS = {
    "p": _BILABIAL, "b": _BILABIAL, "m": _BILABIAL,
    "f": (0.06, 0.00, 0.00, 0.15, 0.00), "v": (0.06, 0.00, 0.00, 0.15, 0.00),
    "w": (0.10, 0.60, 0.90, 0.00, 0.00),
    "r": (0.15, 0.25, 0.30, 0.00, 0.00), "R": (0.20, 0.10, 0.10, 0.00, 0.00),
    "S": (0.12, 0.45, 0.35, 0.00, 0.00), "Z": (0.12, 0.45, 0.35, 0.00, 0.00),  # sh, zh
    "s": (0.08, 0.00, 0.00, 0.50, 0.10), "z": (0.08, 0.00, 0.00, 0.50, 0.10),
    "T": (0.12, 0.00, 0.00, 0.20, 0.00), "D": (0.12, 0.00, 0.00, 0.20, 0.00),  # th
    "t": (0.12, 0.00, 0.00, 0.15, 0.00), "d": (0.12, 0.00, 0.00, 0.15, 0.00),
    "n": (0.12, 0.00, 0.00, 0.10, 0.00), "l": (0.18, 0.00, 0.00, 0.10, 0.00),
    "k": (0.18, 0.00, 0.00, 0.05, 0.00), "g": (0.18, 0.00, 0.00, 0.05, 0.00),
    "N": (0.15, 0.00, 0.00, 0.05, 0.00), "x": (0.20, 0.00, 0.00, 0.05, 0.00),
    "j": (0.15, 0.00, 0.00, 0.40, 0.10), "J": (0.15, 0.00, 0.00, 0.30, 0.05),
    "h": (0.25, 0.00, 0.00, 0.00, 0.00), "?": (0.10, 0.00, 0.00, 0.00, 0.00),
    "C": (0.15, 0.00, 0.00, 0.35, 0.05),  # German ich-laut
}
_DEFAULT_CONSONANT = (0.12, 0.0, 0.0, 0.05, 0.0)
# affricates and clusters are named by their first articulation except where the lips decide
_COMPOUND = {"tS": "S", "dZ": "Z", "ts": "s", "dz": "z", "pf": "f"}
BILABIALS = ("p", "b", "m")


def _vowel_parts(symbol: str) -> list[tuple]:
    """Vowel letters of a mnemonic in order ("aI" -> a then I); length/stress marks ignored."""
    return [_VOWELS[c] for c in symbol if c in _VOWELS]


def phoneme_shapes(symbol: str) -> list[tuple]:
    """Mouth shape(s) of one phoneme; a diphthong has two, spread over its duration."""
    s = symbol.strip()
    if not s or s.startswith("_") or s in ("|", "||"):
        return [REST]
    if s in _COMPOUND:
        return [_CONSONANTS[_COMPOUND[s]]]
    if s[0] in _VOWELS:
        parts = _vowel_parts(s)
        return parts[:2] if len(parts) >= 2 else parts
    if s[0] in _CONSONANTS:
        return [_CONSONANTS[s[0]]]
    return [_DEFAULT_CONSONANT]


def is_bilabial(symbol: str) -> bool:
    return symbol.strip()[:1] in BILABIALS


def viseme_track(phonemes, n_frames: int, fps: float = FPS, offset_s: float = 0.0) -> np.ndarray:
    """(n_frames, len(VISEME_CHANNELS)) mouth shapes at the video rate.

    phonemes: objects with start_s, end_s, symbol (speech.Phoneme), placed at offset_s in the
    timeline; frame i shows time i / fps.
    """
    if n_frames <= 0:
        return np.zeros((0, len(VISEME_CHANNELS)), np.float32)
    duration = n_frames / fps
    n_steps = int(np.ceil(duration / STEP_S)) + 1
    target = np.zeros((n_steps, len(VISEME_CHANNELS)), np.float32)
    closing = np.zeros(n_steps, bool)
    for p in phonemes:
        shapes = phoneme_shapes(p.symbol)
        # lips anticipate the sound: each target is reached a little before it is heard
        t0 = offset_s + p.start_s - ANTICIPATION_S
        t1 = offset_s + p.end_s - ANTICIPATION_S
        span = (t1 - t0) / len(shapes)
        for k, shape in enumerate(shapes):
            a = max(int(round((t0 + k * span) / STEP_S)), 0)
            b = min(int(round((t0 + (k + 1) * span) / STEP_S)), n_steps)
            if b > a:
                target[a:b] = shape
                closing[a:b] = is_bilabial(p.symbol)

    attack = 1.0 - np.exp(-STEP_S / ATTACK_S)
    release = 1.0 - np.exp(-STEP_S / RELEASE_S)
    closure = 1.0 - np.exp(-STEP_S / CLOSURE_S)
    state = np.zeros(len(VISEME_CHANNELS), np.float32)
    smooth = np.empty_like(target)
    for i in range(n_steps):
        if closing[i]:
            rate = closure
        else:
            rate = np.where(target[i] > state, attack, release)
        state = state + rate * (target[i] - state)
        smooth[i] = state

    frame_steps = np.minimum(np.round(np.arange(n_frames) / fps / STEP_S).astype(int), n_steps - 1)
    return np.clip(smooth[frame_steps], 0.0, 1.0).astype(np.float32)


def viseme_targets(phonemes, n_frames: int, fps: float = FPS, offset_s: float = 0.0) -> np.ndarray:
    """(n_frames, 3) jawOpen, mouthFunnel, mouthPucker: the lip-sync ground truth."""
    return viseme_track(phonemes, n_frames, fps, offset_s)[:, :TARGET_CHANNELS]

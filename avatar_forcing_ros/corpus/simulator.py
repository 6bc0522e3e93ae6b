"""Two simulated people in conversation: real synthesised speech, and the faces that go with it.

A session is planned first (who says what when, who laughs, who smiles), then each side's
face is drawn from the plan: lips from the phonemes of its own speech, head motion from its
speech energy and phrase ends, and listening behaviour from the other side's events, each
with a human-like delay and only some of the time (back-channel nods at pauses, smiles
mirrored, laughter answered, gaze averted when a turn starts, blinks, idle micro-motion).

Side 0 is the AVATAR (the face the model learns), side 1 the USER; both are simulated the
same way. Everything random comes from one numpy Generator seeded per session.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.signal import butter, lfilter, medfilt

from ..core.audio import SAMPLE_RATE
from ..core.motion import AF_MOTION_V1
from .speech import Phoneme, synthesize
from .visemes import viseme_targets, viseme_track

FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
AVATAR, USER = 0, 1
SIDE_NAMES = ("avatar", "user")

# Written for this corpus: greetings, opinions, questions, stories, short replies.
SENTENCES = (
    "Hello, it is really nice to meet you.",
    "How was your weekend?",
    "I went hiking in the mountains with a few friends.",
    "The weather was perfect, not a single cloud in the sky.",
    "Do you like cooking, or do you usually eat out?",
    "Honestly, I make a very good tomato soup.",
    "That sounds wonderful, you should tell me the recipe.",
    "I have been reading a book about the history of maps.",
    "Did you know that old maps often showed sea monsters?",
    "Yes, I think I saw one of those in a museum once.",
    "My brother is moving to a new city next month.",
    "Moving is always stressful, but it can be exciting too.",
    "What kind of music do you listen to when you work?",
    "Mostly quiet piano music, it helps me concentrate.",
    "I tried to learn the guitar, but my fingers hurt.",
    "You have to practice a little every day.",
    "Where would you go if you could travel anywhere?",
    "Probably Japan, I would love to see the cherry blossoms.",
    "That is on my list as well.",
    "Wait, are you serious?",
    "I never expected that to happen.",
    "Well, it was a funny misunderstanding in the end.",
    "We laughed about it for the whole evening.",
    "Do you have any pets at home?",
    "We have an old cat who sleeps all day.",
    "Cats are lucky, they never worry about anything.",
    "I am thinking about starting a small garden.",
    "Tomatoes and herbs are easy to grow on a balcony.",
    "Really? I always thought they needed a lot of care.",
    "Not at all, just water and plenty of sun.",
    "Let me ask you something a bit different.",
    "What was your favourite subject at school?",
    "I loved mathematics, although nobody believes me.",
    "Numbers are calm, they always behave the same way.",
    "I could never remember the formulas.",
    "Shall we get a coffee after this?",
    "Sure, there is a nice place around the corner.",
    "They bake their own bread every morning.",
    "Oh, I can almost smell it from here.",
    "Sometimes the simple things make the best days.",
    "I agree with you completely.",
    "Hmm, I am not so sure about that.",
    "Could you say that again, please?",
    "Of course, no problem at all.",
    "The train was late again this morning.",
    "I waited on the platform for almost an hour.",
    "At least you had time to read your book.",
    "True, I finished two whole chapters.",
    "My grandmother tells the best stories about her village.",
    "She remembers every name and every birthday.",
    "Memory like that is a real gift.",
    "What are you working on at the moment?",
    "We are building a small robot that can talk to people.",
    "Does it understand what people say?",
    "A little, and it is learning to listen better.",
    "That is fascinating, and slightly scary.",
    "I promise it is very polite.",
    "Good, then I would like to meet it one day.",
    "Thank you, this was a lovely conversation.",
    "See you soon, and take care.",
)
TEST_EVERY = 5  # every fifth sentence is held out for evaluation

TRAIN_VOICES = ("en-us", "en-gb", "en-us+f3", "en+m3", "en-gb+f2", "en-us+m1", "de", "fr",
                "es", "en-gb-scotland", "en-us+f4",
                # more speakers: espeak-ng's voice variants (formant sets, breathiness, pitch)
                "en-us+m2", "en-gb+m4", "en+m6", "en-us+f1", "en-gb+f4", "en-us+klatt2",
                "en+Andy", "en-us+Annie", "en-gb+steph", "en-us+max", "en+linda", "pt", "pl")
TEST_VOICES = ("en-029", "en+f5", "it", "nl", "en-us+m7")
# a second held-out set: other synthesizers altogether (never heard in training)
OTHER_VOICES = ("flite:slt", "flite:awb", "flite:rms", "flite:kal16", "festival:kal_diphone")
SPLITS = ("train", "test", "other")
FEMALE_VOICES = ("flite:slt",)

LAUGHS = ("ha ha ha", "ha ha", "ha ha ha ha", "he he he")


def sentences(split: str = "train") -> list[str]:
    """The test and the other-synthesizer split speak the held-out sentences."""
    _check_split(split)
    held_out = split != "train"
    return [s for i, s in enumerate(SENTENCES) if (i % TEST_EVERY == TEST_EVERY - 1) == held_out]


def voices(split: str = "train") -> list[str]:
    _check_split(split)
    return list({"train": TRAIN_VOICES, "test": TEST_VOICES, "other": OTHER_VOICES}[split])


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@dataclass(frozen=True)
class Persona:
    voice: str
    rate_wpm: int = 160
    pitch: int = 50
    expressiveness: float = 1.0     # scales head motion and brows
    articulation: float = 1.0       # scales mouth opening
    nod_propensity: float = 0.6     # chance of a back-channel nod at the other's pause
    nod_back_propensity: float = 0.5  # chance of answering the other's back-channel nod with one
    smile_propensity: float = 2.0   # spontaneous smiles per minute
    mirror_propensity: float = 0.6  # chance of smiling back at the other's smile
    laugh_propensity: float = 0.2   # chance of laughing when the other ends a turn
    blink_rate: float = 17.0        # blinks per minute


def random_persona(rng: np.random.Generator, split: str = "train",
                   exclude_voice: str | None = None) -> Persona:
    pool = [v for v in voices(split) if v != exclude_voice]
    voice = pool[rng.integers(len(pool))]
    female = "+f" in voice or voice in FEMALE_VOICES
    wide = split == "train"  # training speakers span a wider range of rates and pitches
    return Persona(
        voice=voice,
        rate_wpm=int(rng.integers(120, 211) if wide else rng.integers(135, 190)),
        pitch=int((rng.integers(50, 86) if wide else rng.integers(55, 76)) if female
                  else (rng.integers(25, 66) if wide else rng.integers(35, 61))),
        expressiveness=float(rng.uniform(0.6, 1.4)),
        articulation=float(rng.uniform(0.85, 1.15)),
        nod_propensity=float(rng.uniform(0.4, 0.9)),
        nod_back_propensity=float(rng.uniform(0.3, 0.8)),
        smile_propensity=float(rng.uniform(1.0, 4.0)),
        mirror_propensity=float(rng.uniform(0.4, 0.85)),
        laugh_propensity=float(rng.uniform(0.1, 0.4)),
        blink_rate=float(rng.uniform(15.0, 20.0)),
    )


@dataclass
class Utterance:
    side: int
    kind: str        # "speech" or "laugh"
    start_s: float   # first phoneme
    end_s: float     # last phoneme's end
    text: str
    phonemes: list   # speech.Phoneme in session time


@dataclass
class Smile:
    side: int
    start_s: float
    end_s: float
    peak: float
    cause: str       # "spontaneous", "mirror", "laugh", "laugh_response"
    cue_s: float | None = None  # the other's event that caused it


@dataclass
class SimulatedSession:
    avatar_audio: np.ndarray           # (T*640,) float32
    user_audio: np.ndarray
    avatar_motion: np.ndarray          # (T, 28) af-motion-v1
    user_motion: np.ndarray
    user_present: np.ndarray           # (T,)
    avatar_viseme_targets: np.ndarray  # (T, 3)
    meta: dict = field(default_factory=dict)


# --- the plan: who speaks, laughs and smiles when -----------------------------------------
def _plan(rng, personas, seconds, split):
    pool = sentences(split)
    n_samples = int(round(seconds * FPS)) * SAMPLES_PER_FRAME
    audio = [np.zeros(n_samples, np.float32), np.zeros(n_samples, np.float32)]
    utterances: list[Utterance] = []

    def say(side, text, t0, kind="speech", pitch_shift=0, rate=None):
        p = personas[side]
        u = synthesize(text, voice=p.voice, pitch=int(np.clip(p.pitch + pitch_shift, 0, 100)),
                       rate_wpm=int(np.clip(rate or p.rate_wpm * rng.uniform(0.92, 1.08), 80, 450)))
        if not u.phonemes:
            return t0
        a = int(round(t0 * SAMPLE_RATE))
        n = max(min(u.audio.shape[0], n_samples - a), 0)
        audio[side][a:a + n] += u.audio[:n]
        phonemes = [Phoneme(t0 + q.start_s, t0 + q.end_s, q.symbol) for q in u.phonemes]
        utterances.append(Utterance(side, kind, phonemes[0].start_s, phonemes[-1].end_s, text,
                                    phonemes))
        return phonemes[-1].end_s

    def laugh(side, t0):
        text = LAUGHS[rng.integers(len(LAUGHS))]
        return say(side, text, t0, kind="laugh", pitch_shift=int(rng.integers(20, 40)),
                   rate=int(rng.integers(220, 300)))

    t = float(rng.uniform(0.3, 1.0))
    speaker = int(rng.integers(2))
    while t < seconds - 0.8:
        for _ in range(int(rng.integers(1, 4))):
            t = say(speaker, pool[rng.integers(len(pool))], t)
            t += float(rng.uniform(0.3, 0.8))  # a pause inside the turn
            if t >= seconds - 0.8:
                break
        listener = 1 - speaker
        if rng.random() < personas[listener].laugh_propensity and t < seconds - 1.0:
            t = laugh(listener, t + float(rng.uniform(0.0, 0.3))) + float(rng.uniform(0.2, 0.5))
        t += float(rng.uniform(0.1, 0.6))  # the gap between turns
        if rng.random() > 0.15:  # now and then the same person goes on after a longer pause
            speaker = listener
    return audio, utterances


def _spontaneous_smiles(rng, side, persona, seconds):
    """A Poisson process of smiles at the persona's rate."""
    smiles = []
    t = float(rng.exponential(60.0 / persona.smile_propensity))
    while t < seconds:
        dur = float(rng.uniform(1.0, 3.5))
        smiles.append(Smile(side, t, t + dur, float(rng.uniform(0.3, 0.7)), "spontaneous"))
        t += dur + float(rng.exponential(60.0 / persona.smile_propensity))
    return smiles


def _smile_reaction(rng, s: Smile, reactor: Persona) -> Smile | None:
    """The other side's answer to smile ``s``, or None: laughter is contagious, a smile is
    mirrored at the reactor's propensity."""
    other = 1 - s.side
    if s.cause == "laugh":
        if rng.random() < 0.85:
            delay = float(rng.uniform(0.2, 0.6))
            end = s.end_s + float(rng.uniform(0.3, 1.0))
            return Smile(other, s.start_s + delay, end, float(rng.uniform(0.6, 0.9)), "laugh_response", s.start_s)
    elif rng.random() < reactor.mirror_propensity:
        delay = float(rng.uniform(0.3, 0.8))
        peak = float(np.clip(s.peak * rng.uniform(0.7, 1.2), 0.2, 0.9))
        end = s.end_s + delay * float(rng.uniform(0.5, 1.5))
        return Smile(other, s.start_s + delay, end, peak, "mirror", s.start_s)
    return None


def _smiles(rng, personas, utterances, seconds):
    smiles: list[Smile] = []
    for side in (AVATAR, USER):
        smiles += _spontaneous_smiles(rng, side, personas[side], seconds)
    for u in utterances:
        if u.kind == "laugh":
            smiles.append(Smile(u.side, u.start_s - 0.15, u.end_s + 0.8,
                                float(rng.uniform(0.8, 1.0)), "laugh"))
    reactions = [_smile_reaction(rng, s, personas[1 - s.side]) for s in smiles]
    return smiles + [r for r in reactions if r is not None]


def _redrawn_avatar_smiles(rng, personas, smiles, seconds):
    """The plan's smiles with the avatar's own choices drawn again from ``rng``: its
    spontaneous smiles and its answers to the user's smiles and laughs. The user's smiles,
    the user's answers (to the avatar's first-drawn smiles) and the smiles of the avatar's
    laughs (its speech audio) stay."""
    kept = [s for s in smiles if s.side == USER or s.cause == "laugh"]
    own = _spontaneous_smiles(rng, AVATAR, personas[AVATAR], seconds)
    answers = [_smile_reaction(rng, s, personas[AVATAR]) for s in kept
               if s.side == USER and s.cause in ("spontaneous", "laugh")]
    return kept + own + [r for r in answers if r is not None]


# --- drawing a face from the plan ---------------------------------------------------------
def _smooth_noise(rng, n, cutoff_hz, order=2):
    """Unit-std band-limited noise at the frame rate (slow drifts, micro-motion)."""
    b, a = butter(order, cutoff_hz / (FPS / 2))
    x = lfilter(b, a, rng.standard_normal(n + 100))[100:]
    return (x / (x.std() + 1e-9)).astype(np.float32)


def _envelope(n, start_s, end_s, rise_s, fall_s):
    """0..1 with smooth (raised-cosine) rise at start and fall after end, per frame."""
    t = np.arange(n) / FPS
    up = np.clip((t - start_s) / max(rise_s, 1e-3), 0, 1)
    down = np.clip(1 - (t - end_s) / max(fall_s, 1e-3), 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))).astype(np.float32)


def _nod(n, start_s, amplitude, period_s, cycles):
    """head_pitch offset of a nod: the nose dips (pitch < 0) and comes back, cycles decaying."""
    t = np.arange(n) / FPS - start_s
    out = np.zeros(n, np.float32)
    for k in range(cycles):
        tau = t - k * period_s
        inside = (tau >= 0) & (tau < period_s)
        out[inside] -= amplitude * (0.6 ** k) * np.sin(np.pi * tau[inside] / period_s)
    return out


# How much of the jaw's opening follows the voice's loudness (vocal effort: louder, stressed
# syllables open wider) rather than the phoneme alone.
JAW_LOUDNESS = 0.45


def _relative_loudness(audio, n, speaking):
    """Per-frame RMS of the voice relative to its own loud frames (95th percentile while
    speaking), lightly smoothed: ~1 on loud syllables, whatever the voice's overall level."""
    frames = audio[:n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME).astype(np.float64)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    rms = np.convolve(rms, [0.25, 0.5, 0.25], mode="same")
    ref = np.percentile(rms[speaking], 95) if speaking.sum() >= 5 else rms.max()
    return np.clip(rms / max(ref, 1e-6), 0, 1.2).astype(np.float32)


@dataclass(frozen=True)
class Nod:
    start_s: float
    amplitude: float
    period_s: float
    cycles: int
    cue_frame: int   # the other's pause (back-channel) or the other's nod (answer)
    kind: str        # "backchannel" or "answer"


def _backchannel_nods(rng, side, persona, n, utterances, cues_s):
    """``side``'s back-channel nods at the other's pauses, after a human delay, not always."""
    speaking = _speaking_mask(n, utterances, side)
    nods = []
    for cue_s in cues_s:
        f = _frame(cue_s, n)
        if f >= n or speaking[f] or rng.random() > persona.nod_propensity:
            continue
        nods.append(Nod(cue_s + float(rng.uniform(0.2, 0.6)), float(rng.uniform(0.05, 0.12)),
                        float(rng.uniform(0.35, 0.5)), int(rng.integers(1, 3)), f, "backchannel"))
    return nods


def _answer_nods(rng, persona, n, other_nods):
    """The one who paused acknowledges the listener's back-channel nods with smaller ones."""
    nods = []
    for other_nod in [d for d in other_nods if d.kind == "backchannel"]:
        if rng.random() > persona.nod_back_propensity:
            continue
        nods.append(Nod(other_nod.start_s + float(rng.uniform(0.25, 0.7)), float(rng.uniform(0.04, 0.09)),
                        float(rng.uniform(0.3, 0.45)), 1, _frame(other_nod.start_s, n), "answer"))
    return nods


def _plan_nods(rng, personas, n, utterances, pauses):
    """Each side's back-channel nods at the other's pauses, then the answers: the one who
    paused acknowledges the listener's nod with a smaller nod of its own, as people do (so a
    nod of the user is something the avatar can react to)."""
    nods = {side: _backchannel_nods(rng, side, personas[side], n, utterances, pauses[1 - side])
            for side in (AVATAR, USER)}
    for side in (AVATAR, USER):
        nods[side] = nods[side] + _answer_nods(rng, personas[side], n, nods[1 - side])
    return nods


def _frame_energy(audio, n):
    frames = audio[:n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    return np.clip(rms / 0.1, 0, 1.5).astype(np.float32)


def frame_intonation(audio, n):
    """Per-frame intonation in semitones around the speaker's median F0 (0 where unvoiced),
    from the normalised autocorrelation of each 40 ms frame (F0 searched in 70..400 Hz)."""
    frames = audio[:n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME).astype(np.float64)
    frames = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames, 2 * SAMPLES_PER_FRAME, axis=1)
    ac = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 70
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    strength = ac[np.arange(n), lag] / np.maximum(ac[:, 0], 1e-12)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    voiced = (strength > 0.45) & (rms > 0.01)
    semitones = np.zeros(n, np.float32)
    if voiced.sum() >= 3:
        f0 = SAMPLE_RATE / lag[voiced]
        semitones[voiced] = 12 * np.log2(f0 / np.median(f0))
    return np.clip(medfilt(semitones, 3), -8, 8).astype(np.float32)  # drop octave jumps


def _speaking_mask(n, utterances, side):
    mask = np.zeros(n, bool)
    for u in utterances:
        if u.side == side:
            mask[_frame(u.start_s, n):_frame(u.end_s, n) + 1] = True
    return mask


def _frame(t_s, n):
    return int(np.clip(round(t_s * FPS), 0, n))


def _face(rng, side, persona, n, audio, utterances, smiles, nods):
    idx = AF_MOTION_V1.index
    m = np.tile(AF_MOTION_V1.neutral(), (n, 1))
    expr = persona.expressiveness
    mine = [u for u in utterances if u.side == side]
    speaking = _speaking_mask(n, utterances, side)
    record = {"nods": [], "nods_answered": [], "blinks": 0, "gaze_aversions": []}

    # idle: posture drift and micro-motion, always present
    m[:, idx("head_yaw")] += 0.04 * expr * _smooth_noise(rng, n, 0.15)
    m[:, idx("head_yaw")] += 0.01 * _smooth_noise(rng, n, 1.5)
    m[:, idx("head_pitch")] += 0.03 * expr * _smooth_noise(rng, n, 0.15)
    m[:, idx("head_pitch")] += 0.008 * _smooth_noise(rng, n, 1.5)
    m[:, idx("head_roll")] += 0.025 * expr * _smooth_noise(rng, n, 0.1)
    m[:, idx("head_tx")] += 0.02 * _smooth_noise(rng, n, 0.1)
    m[:, idx("head_ty")] += 0.015 * _smooth_noise(rng, n, 0.1)
    m[:, idx("head_scale")] += 0.02 * _smooth_noise(rng, n, 0.05)

    # speech-driven head motion: rhythm of the energy, a little sway while talking
    energy = _frame_energy(audio, n)
    b, a = butter(2, [0.6 / (FPS / 2), 4.0 / (FPS / 2)], btype="band")
    rhythm = lfilter(b, a, energy).astype(np.float32)
    m[:, idx("head_pitch")] += 0.12 * expr * rhythm
    sway = _smooth_noise(rng, n, 0.6) * speaking * expr
    m[:, idx("head_yaw")] += 0.04 * sway
    m[:, idx("head_roll")] += 0.02 * _smooth_noise(rng, n, 0.5) * speaking * expr
    # intonation: the chin lifts a little with a high pitch, brows follow rises
    b1, a1 = butter(1, 2.0 / (FPS / 2))
    intonation = lfilter(b1, a1, frame_intonation(audio, n)).astype(np.float32)
    m[:, idx("head_pitch")] += 0.006 * expr * intonation
    m[:, idx("head_roll")] += 0.003 * expr * intonation
    emphasis = np.clip(lfilter(b, a, energy), 0, None).astype(np.float32)
    emphasis += 0.02 * np.clip(intonation, 0, None)
    m[:, idx("browInnerUp")] += np.clip(0.9 * expr * emphasis, 0, 0.6)
    m[:, idx("eyeWideLeft")] += np.clip(0.4 * expr * emphasis, 0, 0.3)
    m[:, idx("eyeWideRight")] += np.clip(0.4 * expr * emphasis, 0, 0.3)
    m[:, idx("browOuterUpLeft")] += np.clip(1.0 * expr * emphasis, 0, 0.5)
    m[:, idx("browOuterUpRight")] += np.clip(1.0 * expr * emphasis, 0, 0.5)

    # phrase ends: a small nod as the sentence lands
    for u in mine:
        if u.kind == "speech" and rng.random() < 0.7:
            amplitude = expr * float(rng.uniform(0.03, 0.07))
            m[:, idx("head_pitch")] += _nod(n, u.end_s - 0.15, amplitude,
                                            float(rng.uniform(0.35, 0.5)), 1)

    # mouth: visemes of everything this side voices (speech and laughter)
    phonemes = [p for u in mine for p in u.phonemes]
    track = viseme_track(phonemes, n) * persona.articulation
    # louder syllables open wider, at the same mean opening while the phonemes open the jaw
    effort = (1 - JAW_LOUDNESS) + JAW_LOUDNESS * _relative_loudness(audio, n, speaking)
    open_frames = track[:, 0] > 0.05
    if open_frames.sum() >= 5:
        effort /= max(float(effort[open_frames].mean()), 0.2)
    m[:, idx("jawOpen")] += track[:, 0] * effort
    m[:, idx("mouthFunnel")] += track[:, 1]
    m[:, idx("mouthPucker")] += track[:, 2]
    lopsided = float(rng.uniform(-0.1, 0.1))
    m[:, idx("mouthStretchLeft")] += track[:, 3] * (1 + lopsided)
    m[:, idx("mouthStretchRight")] += track[:, 3] * (1 - lopsided)
    m[:, idx("mouthSmileLeft")] += 0.4 * track[:, 4]
    m[:, idx("mouthSmileRight")] += 0.4 * track[:, 4]
    # a listener's mouth is not perfectly still
    m[:, idx("jawOpen")] += np.clip(0.02 + 0.015 * _smooth_noise(rng, n, 0.3), 0, None) * ~speaking

    # smiles (and laughter's big smile with squinting cheeks)
    smile = np.zeros(n, np.float32)
    for s in smiles:
        if s.side == side:
            env = s.peak * _envelope(n, s.start_s, s.end_s, 0.35, 0.6)
            smile = np.maximum(smile, env)
    m[:, idx("mouthSmileLeft")] += smile * (1 + lopsided)
    m[:, idx("mouthSmileRight")] += smile * (1 - lopsided)
    m[:, idx("cheekSquintLeft")] += 0.7 * smile ** 1.5
    m[:, idx("cheekSquintRight")] += 0.7 * smile ** 1.5
    m[:, idx("eyeBlinkLeft")] += 0.25 * smile ** 2
    m[:, idx("eyeBlinkRight")] += 0.25 * smile ** 2
    for s in smiles:
        if s.side == side and s.cause in ("laugh", "laugh_response"):
            # laughter shakes the head: quick up-and-down bobs, chin up
            env = _envelope(n, s.start_s, s.end_s - 0.6, 0.15, 0.4)
            t = np.arange(n) / FPS
            bob = 0.5 + 0.5 * np.sin(2 * np.pi * float(rng.uniform(3.5, 5.0)) * t)
            lift = 0.06 if s.cause == "laugh" else 0.03
            m[:, idx("head_pitch")] += expr * env * (lift + 0.03 * bob)
            if s.cause == "laugh_response" and rng.random() < 0.4:
                m[:, idx("jawOpen")] += 0.25 * env * bob  # a silent chuckle

    # nods planned for both sides together (_plan_nods): back-channel and answering ones
    for d in nods:
        m[:, idx("head_pitch")] += _nod(n, d.start_s, d.amplitude, d.period_s, d.cycles)
        record["nods" if d.kind == "backchannel" else "nods_answered"].append([d.cue_frame, _frame(d.start_s, n)])

    # gaze: mutual gaze with micro-saccades; looking away while starting to speak
    gaze_yaw = np.zeros(n, np.float32)
    gaze_pitch = np.zeros(n, np.float32)
    t = 0.0
    while t < n / FPS:
        dur = float(rng.uniform(0.6, 2.5))
        a, b2 = _frame(t, n), _frame(t + dur, n)
        gaze_yaw[a:b2] = rng.normal(0, 0.03)
        gaze_pitch[a:b2] = rng.normal(0, 0.02)
        t += dur
    turn_starts = [u.start_s for i, u in enumerate(mine)
                   if u.kind == "speech" and (i == 0 or u.start_s - mine[i - 1].end_s > 1.0)]
    for t0 in turn_starts:
        if rng.random() < 0.75:
            a = _frame(t0 - 0.2, n)
            b2 = _frame(t0 + float(rng.uniform(0.6, 1.8)), n)
            gaze_yaw[a:b2] = rng.choice([-1, 1]) * rng.uniform(0.2, 0.4)
            gaze_pitch[a:b2] = rng.uniform(-0.15, 0.15)
            m[a:b2, idx("browDownLeft")] += 0.1 * expr  # thinking
            m[a:b2, idx("browDownRight")] += 0.1 * expr
            m[a:b2, idx("mouthFrownLeft")] += 0.06 * expr
            m[a:b2, idx("mouthFrownRight")] += 0.06 * expr
            record["gaze_aversions"].append([a, b2])
    # eyes move fast but not in zero time: a one-frame-ish saccade
    b, a = butter(1, 6.0 / (FPS / 2))
    m[:, idx("gaze_yaw")] += lfilter(b, a, gaze_yaw)
    m[:, idx("gaze_pitch")] += lfilter(b, a, gaze_pitch)

    # blinks: random, plus more at phrase ends
    blink_times = []
    t = float(rng.exponential(60.0 / persona.blink_rate))
    while t < n / FPS:
        blink_times.append(t)
        t += 0.25 + float(rng.exponential(60.0 / persona.blink_rate))
    for u in mine:
        if rng.random() < 0.4:
            blink_times.append(u.end_s + float(rng.uniform(0.0, 0.25)))
    shape = np.array([0.45, 1.0, 0.7, 0.25], np.float32)
    blink = np.zeros(n, np.float32)
    for bt in sorted(blink_times):
        f = _frame(bt, n)
        k = min(len(shape), n - f)
        if k > 0:
            blink[f:f + k] = np.maximum(blink[f:f + k], shape[:k])
            record["blinks"] += 1
    m[:, idx("eyeBlinkLeft")] += blink
    m[:, idx("eyeBlinkRight")] += blink * float(rng.uniform(0.9, 1.0))

    return AF_MOTION_V1.clip(m), record


def _segments(items, n):
    out = []
    for a, b in items:
        if _frame(a, n) < n:
            out.append([_frame(a, n), max(_frame(b, n), _frame(a, n) + 1)])
    return out


def simulate_session(seed: int, seconds: float = 20.0, split: str = "train",
                     avatar: Persona | None = None,
                     user: Persona | None = None, avatar_take: int = 0,
                     redraw_reactions: bool = False) -> SimulatedSession:
    """One dyadic session of `seconds`; the same seed (and personas) gives the same plan.

    ``avatar_take`` > 0: another take of the same listener in the same conversation. The plan
    (speech, smiles, nods) and the user's face stay as in take 0; the avatar's face draws its
    own randomness (posture drift, micro-motion, gaze, blinks, phrase-end nods) from a
    generator of its own: the reference that FD and rPCC cannot reach 0 against. It keeps the
    listener's planned reactions, which no model can know, so it is a floor no model reaches.

    ``redraw_reactions`` (with ``avatar_take`` > 0): the take also draws the listener's own
    choices again, by the same persona: its spontaneous smiles, whether and when it mirrors
    the user's smiles and laughs, its back-channel nods at the user's pauses and its answers
    to the user's nods. The user (face, speech, the user's answers to the first take) stays.
    It is what a perfect model of the listener's rules scores when, like any model, it cannot
    know the listener's coin flips.

    Speech audio comes from libespeak-ng, which keeps its glottal phase between calls; the
    arrays are bit-identical across runs when each session is made in a fresh process (as
    dataset.generate_corpus does).
    """
    _check_split(split)
    if redraw_reactions and not avatar_take:
        raise ValueError("redraw_reactions needs avatar_take > 0 (take 0 is the corpus's own listener)")
    if not seconds or seconds < 2.0:
        raise ValueError(f"a session needs at least 2 seconds, got {seconds}")
    rng = np.random.default_rng(seed)
    avatar = avatar or random_persona(rng, split)
    user = user or random_persona(rng, split, exclude_voice=avatar.voice)
    personas = (avatar, user)
    n = int(round(seconds * FPS))

    audio, utterances = _plan(rng, personas, seconds, split)
    smiles = _smiles(rng, personas, utterances, seconds)
    # a pause is where a speaker stops and stays silent for a while and the listener does not
    # take the turn at once: there a listener may nod
    pauses = {AVATAR: [], USER: []}
    for side in (AVATAR, USER):
        mine = [u for u in utterances if u.side == side and u.kind == "speech"]
        others = [u.start_s for u in utterances if u.side != side]
        for i, u in enumerate(mine):
            nxt = mine[i + 1].start_s if i + 1 < len(mine) else seconds
            taken = any(u.end_s - 0.2 <= t < u.end_s + 1.2 for t in others)
            if nxt - u.end_s >= 0.25 and u.end_s < seconds - 0.3 and not taken:
                pauses[side].append(u.end_s)

    nods = _plan_nods(rng, personas, n, utterances, pauses)
    motion, records = [], []
    for side in (AVATAR, USER):
        mo, rec = _face(rng, side, personas[side], n, audio[side], utterances, smiles, nods[side])
        if side == AVATAR and avatar_take:  # take 0 was drawn all the same: the user's face stays
            take_rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), int(avatar_take)])
            if redraw_reactions:  # the user's smiles are all kept: the meta below stays true for both
                smiles = _redrawn_avatar_smiles(take_rng, personas, smiles, seconds)
                nods[AVATAR] = (_backchannel_nods(take_rng, AVATAR, avatar, n, utterances, pauses[USER])
                                + _answer_nods(take_rng, avatar, n, nods[USER]))
            mo, rec = _face(take_rng, side, personas[side], n, audio[side], utterances, smiles, nods[side])
        motion.append(mo)
        records.append(rec)

    avatar_phonemes = [p for u in utterances if u.side == AVATAR for p in u.phonemes]
    meta = {
        "seed": int(seed) if np.isscalar(seed) else str(seed),
        **({"avatar_take": int(avatar_take)} if avatar_take else {}),
        **({"redraw_reactions": True} if redraw_reactions else {}),
        "seconds": float(seconds),
        "split": split,
        "voices": {"avatar": avatar.voice, "user": user.voice},
        "personas": {"avatar": asdict(avatar), "user": asdict(user)},
        "texts": {name: [u.text for u in utterances if u.side == side and u.kind == "speech"]
                  for side, name in enumerate(SIDE_NAMES)},
        "avatar_speaking": _segments([(u.start_s, u.end_s) for u in utterances
                                      if u.side == AVATAR and u.kind == "speech"], n),
        "user_speaking": _segments([(u.start_s, u.end_s) for u in utterances
                                    if u.side == USER and u.kind == "speech"], n),
        "backchannel": [_frame(t, n) for t in pauses[USER] if _frame(t, n) < n],
        "user_smiles": _segments([(s.start_s, s.end_s) for s in smiles if s.side == USER], n),
        "user_laughs": _segments([(u.start_s, u.end_s) for u in utterances
                                  if u.side == USER and u.kind == "laugh"], n),
        "avatar_laughs": _segments([(u.start_s, u.end_s) for u in utterances
                                    if u.side == AVATAR and u.kind == "laugh"], n),
        "avatar_nods": records[AVATAR]["nods"],  # [cue frame, nod start frame]
        "avatar_nods_answered": records[AVATAR]["nods_answered"],  # [user's nod frame, avatar's nod start]
        "avatar_gaze_aversions": records[AVATAR]["gaze_aversions"],
        "smile_reactions": [
            {"side": SIDE_NAMES[s.side], "cause": s.cause, "cue": _frame(s.cue_s, n),
             "start": _frame(s.start_s, n)}
            for s in smiles if s.cue_s is not None and _frame(s.start_s, n) < n],
        "utterances": [{"side": SIDE_NAMES[u.side], "kind": u.kind, "text": u.text,
                        "start": _frame(u.start_s, n), "end": _frame(u.end_s, n)}
                       for u in utterances],
        "avatar_visemes": "avatar_viseme_targets.npy (jawOpen, mouthFunnel, mouthPucker)",
    }
    return SimulatedSession(
        avatar_audio=np.clip(audio[AVATAR], -1, 1),
        user_audio=np.clip(audio[USER], -1, 1),
        avatar_motion=motion[AVATAR],
        user_motion=motion[USER],
        user_present=np.ones(n, np.float32),
        avatar_viseme_targets=viseme_targets(avatar_phonemes, n),
        meta=meta,
    )

"""Synthesised speech with phoneme timing, from libespeak-ng through ctypes, and from two
other synthesizers (flite, festival) through their command lines.

espeak-ng reports, while it synthesises, where each phoneme starts in the audio it produced,
so the mouth targets of the training corpus come from the same synthesis as the sound.
The library is global state (one voice, one callback), so every call holds a module lock.

``voice="flite:slt"`` or ``"festival:kal_diphone"`` speaks with another synthesizer (Debian
packages ``flite``, ``festival``, ``festvox-kallpc16k``): a different voice source and
prosody than espeak-ng's, used to test the model on voices it never heard. Their phoneme
timing (CMU phones, end times) is mapped to espeak mnemonics for the viseme track.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np

from ..core.audio import SAMPLE_RATE, resample

LIBRARY = "libespeak-ng.so.1"

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0
_EE_NOT_FOUND = 2

RATE_RANGE = (80, 450)  # espeakRATE_MINIMUM, espeakRATE_MAXIMUM (words per minute)
PITCH_RANGE = (0, 100)
MAX_TEXT_CHARS = 5000  # one utterance; longer text is the caller's job to split

# espeak's pause "phonemes": they separate clauses and carry no mouth shape
PAUSE_SYMBOLS = ("_", "_:", "_!", "_|", "_^_", "||", "|")


class SpeechError(RuntimeError):
    """Speech cannot be synthesised (library missing, unknown voice, bad text or parameter)."""


@dataclass(frozen=True)
class Phoneme:
    start_s: float
    end_s: float
    symbol: str  # espeak's ASCII mnemonic, e.g. "h", "@", "oU"


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    text: str


@dataclass
class Utterance:
    audio: np.ndarray  # (N,) float32 mono in [-1, 1] at sample_rate
    sample_rate: int
    phonemes: list[Phoneme]
    words: list[Word]
    text: str
    voice: str
    rate_wpm: int = 160
    pitch: int = 50
    native_rate: int = field(default=22050, repr=False)

    @property
    def duration_s(self) -> float:
        return self.audio.shape[0] / self.sample_rate


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int),
                ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int),
                ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int),
                ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int),  # ms from the start of the message
                ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p),
                ("id", _EventId)]


class _Voice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p),
                ("languages", ctypes.c_void_p),  # priority byte + name pairs, not a plain string
                ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte),
                ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte),
                ("score", ctypes.c_int),
                ("spare", ctypes.c_void_p)]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.POINTER(_Event))

_lock = threading.Lock()
_lib = None
_native_rate = 0
_chunks: list[np.ndarray] = []
_events: list[tuple[int, int, int, int, str]] = []  # (type, ms, text_position, length, symbol)


def _on_synth(wav, n_samples, events):
    # Called by espeak inside espeak_Synth (synchronous mode): copy out, never keep pointers.
    if wav and n_samples > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
    i = 0
    while events[i].type != _EVENT_LIST_TERMINATED:
        e = events[i]
        symbol = ""
        if e.type == _EVENT_PHONEME:
            symbol = bytes(e.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
        _events.append((e.type, e.audio_position, e.text_position, e.length, symbol))
        if e.type == _EVENT_MSG_TERMINATED:
            break
        i += 1
    return 0


_callback = _SYNTH_CALLBACK(_on_synth)  # module-level: espeak keeps the pointer


def _library():
    """Load and initialise libespeak-ng once (caller holds the lock)."""
    global _lib, _native_rate
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError as e:
        raise SpeechError(f"cannot load {LIBRARY} ({e}); install the Debian package "
                          "libespeak-ng1 (espeak-ng)") from None
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS)
    if rate <= 0:
        raise SpeechError(f"espeak_Initialize failed ({rate}): espeak-ng-data not found?")
    lib.espeak_SetSynthCallback(_callback)
    _native_rate = rate
    _lib = lib
    return lib


def available_voices() -> list[str]:
    """Identifiers of the installed voices (e.g. "gmw/en-US"); language codes like "en-us" and
    variants like "en-us+f3" are accepted by synthesize() as well."""
    with _lock:
        lib = _library()
        voices = lib.espeak_ListVoices(None)
        out = []
        i = 0
        while voices[i]:
            v = voices[i].contents
            if v.identifier:
                out.append(v.identifier.decode("utf-8", "replace"))
            i += 1
    return sorted(out)


def _variants(lib) -> set[str]:
    path = ctypes.c_char_p()
    lib.espeak_Info(ctypes.byref(path))
    folder = os.path.join(os.fsdecode(path.value or b""), "voices", "!v")
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


def _select_voice(lib, voice: str) -> None:
    """A voice file name ("en-us", "de", "gmw/en"), optionally "+variant" ("en-us+f3"), or a
    language code ("en-gb") resolved to its best installed voice as espeak-ng's CLI does."""
    language, plus, variant = voice.partition("+")
    # espeak silently ignores an unknown variant, so check it against the installed files
    if plus and variant not in _variants(lib):
        raise SpeechError(f"espeak-ng has no voice variant {variant!r} (in {voice!r})")
    status = lib.espeak_SetVoiceByName(voice.encode("utf-8"))
    if status == _EE_OK:
        return
    spec = _Voice()
    language_bytes = ctypes.create_string_buffer(language.encode("utf-8"))
    spec.languages = ctypes.cast(language_bytes, ctypes.c_void_p)
    candidates = lib.espeak_ListVoices(ctypes.byref(spec))
    i = 0
    while candidates[i]:
        identifier = candidates[i].contents.identifier
        # MBROLA voices need separately installed diphone databases, which Debian lacks here
        if identifier and not identifier.startswith(b"mb/"):
            status = lib.espeak_SetVoiceByName(identifier + (plus + variant).encode("utf-8"))
            if status == _EE_OK:
                return
        i += 1
    raise SpeechError(f"espeak-ng has no voice {voice!r} (see available_voices())")


def synthesize(text: str, voice: str = "en-us", rate_wpm: int = 160, pitch: int = 50,
               sample_rate: int = SAMPLE_RATE) -> Utterance:
    """Speak `text` with an espeak-ng voice; audio and phoneme/word timing in seconds.

    The audio ends with espeak's sentence pause (silence). Phoneme timing is the same on every
    call; the samples can shift by part of a pitch period between calls in one process, because
    espeak keeps its glottal phase from the previous utterance (a fresh process reproduces them
    exactly, which is how the corpus generator stays deterministic).
    """
    if not isinstance(text, str) or not text.strip():
        raise SpeechError(f"text to synthesise is empty: {text!r}")
    if len(text) > MAX_TEXT_CHARS:
        raise SpeechError(f"text is {len(text)} characters, more than {MAX_TEXT_CHARS}; "
                          "split it into sentences")
    if "\0" in text:
        raise SpeechError("text contains a NUL character")
    if not isinstance(voice, str) or not voice.strip() or "\0" in voice:
        raise SpeechError(f"voice name is empty or invalid: {voice!r}")
    if not (RATE_RANGE[0] <= int(rate_wpm) <= RATE_RANGE[1]):
        raise SpeechError(f"rate_wpm {rate_wpm} outside espeak's {RATE_RANGE[0]}..{RATE_RANGE[1]}")
    if not (PITCH_RANGE[0] <= int(pitch) <= PITCH_RANGE[1]):
        raise SpeechError(f"pitch {pitch} outside {PITCH_RANGE[0]}..{PITCH_RANGE[1]}")
    if not (1000 <= int(sample_rate) <= 384000):
        raise SpeechError(f"sample_rate {sample_rate} Hz is out of range")

    if voice.split(":", 1)[0] in EXTERNAL_SYNTHESIZERS:
        return _synthesize_external(text, voice, int(rate_wpm), int(pitch), int(sample_rate))
    data = text.encode("utf-8") + b"\0"
    with _lock:
        lib = _library()
        _select_voice(lib, voice)
        # The voice resets the parameters, so they are set after it.
        lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        _chunks.clear()
        _events.clear()
        buf = ctypes.create_string_buffer(data, len(data))
        status = lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE,
                                   None, None)
        chunks, events = list(_chunks), list(_events)
        _chunks.clear()
        _events.clear()
        native_rate = _native_rate
    if status != _EE_OK:
        raise SpeechError(f"espeak_Synth failed ({status}) for text {text[:40]!r}")

    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if pcm.size == 0:
        raise SpeechError(f"espeak-ng produced no audio for {text[:40]!r} (voice {voice!r})")
    audio = resample(pcm.astype(np.float32) / 32768.0, native_rate, int(sample_rate))
    duration = audio.shape[0] / sample_rate
    phonemes, words = _timing(events, text, duration)
    return Utterance(audio=audio, sample_rate=int(sample_rate), phonemes=phonemes, words=words,
                     text=text, voice=voice, rate_wpm=int(rate_wpm), pitch=int(pitch),
                     native_rate=native_rate)


def _timing(events, text: str, duration: float) -> tuple[list[Phoneme], list[Word]]:
    """Phoneme events give only start times: a phoneme ends where the next one (or a pause,
    or the clause end) starts."""
    boundaries = []  # (seconds, symbol or None for a pause/end)
    word_starts = []  # (seconds, text_position, length)
    for kind, ms, pos, length, symbol in events:
        t = min(ms / 1000.0, duration)
        if kind == _EVENT_PHONEME and symbol.startswith("("):
            continue  # a language switch marker such as "(en)", not a sound
        if kind == _EVENT_PHONEME:
            boundaries.append((t, None if symbol in PAUSE_SYMBOLS or not symbol else symbol))
        elif kind == _EVENT_END:
            boundaries.append((t, None))
        elif kind == _EVENT_WORD:
            word_starts.append((t, pos, length))
    boundaries.sort(key=lambda b: b[0])
    boundaries.append((duration, None))

    phonemes = []
    for (t0, sym), (t1, _) in zip(boundaries[:-1], boundaries[1:]):
        if sym is not None and t1 > t0:
            phonemes.append(Phoneme(t0, t1, sym))

    words = []
    for i, (t0, pos, length) in enumerate(word_starts):
        t_next = word_starts[i + 1][0] if i + 1 < len(word_starts) else duration
        inside = [p.end_s for p in phonemes if t0 <= p.start_s < t_next]
        t1 = max(inside) if inside else t0
        # text_position is 1-based, in characters
        words.append(Word(t0, t1, text[max(pos - 1, 0):max(pos - 1, 0) + length]))
    return phonemes, words


# --- other synthesizers --------------------------------------------------------------------
EXTERNAL_SYNTHESIZERS = ("flite", "festival")
# CMU / festival "radio" phones -> espeak mnemonics (visemes.py reads the latter)
CMU_TO_ESPEAK = {
    "aa": "A", "ae": "&", "ah": "V", "ao": "O", "aw": "aU", "ax": "@", "axr": "3", "ay": "aI",
    "eh": "E", "er": "3", "ey": "eI", "ih": "I", "iy": "i", "ow": "oU", "oy": "OI", "uh": "U",
    "uw": "u", "b": "b", "ch": "tS", "d": "d", "dh": "D", "dx": "t", "f": "f", "g": "g",
    "hh": "h", "jh": "dZ", "k": "k", "l": "l", "m": "m", "n": "n", "ng": "N", "p": "p", "r": "r",
    "s": "s", "sh": "S", "t": "t", "th": "T", "v": "v", "w": "w", "y": "j", "z": "z", "zh": "Z",
}
DEFAULT_RATE_WPM = 160  # the rate at which the external voices speak unstretched


_flite_voices: list[str] = []


def flite_voices() -> list[str]:
    """Voices of the installed flite (it falls back to its default for an unknown name)."""
    if not _flite_voices:
        out = _run(["flite", "-lv"], "flite voices")
        _flite_voices.extend(out.split(":", 1)[-1].split())
    return list(_flite_voices)


def _run(cmd: list[str], what: str, stdin: str | None = None) -> str:
    try:
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise SpeechError(f"{what}: {cmd[0]} is not installed (Debian packages flite, festival, "
                          "festvox-kallpc16k; scripts/setup.sh installs them)") from None
    except subprocess.TimeoutExpired:
        raise SpeechError(f"{what}: {cmd[0]} did not finish in 60 s") from None
    if r.returncode != 0:
        raise SpeechError(f"{what}: {cmd[0]} failed ({r.returncode}): {r.stderr.strip()[:200]}")
    return r.stdout + "\n" + r.stderr  # festival reports Scheme errors on stderr with status 0


def _segments_to_timing(ends: list[tuple[float, str]], duration: float) -> list[Phoneme]:
    """(end time, CMU phone) in order -> Phonemes in espeak mnemonics; pauses dropped. Times
    are scaled onto the audio when the synthesizer's stretch made them disagree with it."""
    if not ends:
        return []
    scale = duration / ends[-1][0] if ends[-1][0] > 0 and abs(ends[-1][0] - duration) > 0.02 * duration else 1.0
    out, start = [], 0.0
    for end, phone in ends:
        end = min(end * scale, duration)
        if phone not in ("pau", "h#", "#", "brth") and end > start:
            out.append(Phoneme(start, end, CMU_TO_ESPEAK.get(phone, phone)))
        start = end
    return out


def _synthesize_external(text: str, voice: str, rate_wpm: int, pitch: int, sample_rate: int) -> Utterance:
    """flite:<voice> or festival:<voice>. Rate maps to a duration stretch; pitch (0..100, 50
    neutral) to a mean F0 shift of up to +-6 semitones around the voice's own (flite only)."""
    import soundfile as sf

    engine, _, name = voice.partition(":")
    if not name:
        raise SpeechError(f"voice {voice!r}: expected {engine}:<voice name>")
    stretch = DEFAULT_RATE_WPM / float(rate_wpm)
    with tempfile.TemporaryDirectory(prefix="af_tts_") as tmp:
        wav = os.path.join(tmp, "out.wav")
        if engine == "flite":
            if shutil.which("flite") is None:
                _run(["flite"], voice)  # raises the not-installed error
            if name not in flite_voices():
                raise SpeechError(f"flite has no voice {name!r} (installed: {', '.join(flite_voices())})")
            base = {"slt": 170.0, "kal": 105.0, "kal16": 105.0, "awb": 110.0, "rms": 105.0}.get(name, 120.0)
            f0 = base * 2.0 ** ((pitch - 50) / 50.0 * 0.5)
            out = _run(["flite", "-voice", name, "--setf", f"duration_stretch={stretch:.3f}",
                        "--setf", f"int_f0_target_mean={f0:.1f}", "-psdur", "-t", text, "-o", wav], voice)
            ends = []
            for tok in out.split():
                phone, _, t = tok.rpartition(":")
                try:
                    ends.append((float(t), phone))
                except ValueError:
                    continue
        elif engine == "festival":
            segs = os.path.join(tmp, "out.segs")
            quoted = text.replace("\\", " ").replace('"', " ")
            script = (f"(voice_{name})\n(Parameter.set 'Duration_Stretch {stretch:.3f})\n"
                      f'(set! u (SynthText "{quoted}"))\n'
                      f'(utt.save.wave u "{wav}" \'riff)\n(utt.save.segs u "{segs}")\n')
            out = _run(["festival", "--pipe"], voice, stdin=script)
            if "SIOD ERROR" in out:  # e.g. an unknown voice: festival goes on with its default
                raise SpeechError(f"festival: {out.split('SIOD ERROR', 1)[1].strip()[:120]} (voice {voice!r})")
            if not os.path.isfile(segs):
                raise SpeechError(f"{voice}: festival wrote no segments (unknown voice {name!r}?)")
            ends = []
            for line in open(segs).read().split("#", 1)[-1].splitlines():
                parts = line.split()
                if len(parts) == 3:
                    ends.append((float(parts[0]), parts[2]))
        else:
            raise SpeechError(f"unknown synthesizer {engine!r} in voice {voice!r}")
        if not os.path.isfile(wav):
            raise SpeechError(f"{voice}: no audio written for {text[:40]!r}")
        x, rate = sf.read(wav, dtype="float32", always_2d=True)
    audio = resample(x[:, 0], int(rate), sample_rate)
    if audio.size == 0:
        raise SpeechError(f"{voice} produced no audio for {text[:40]!r}")
    duration = audio.shape[0] / sample_rate
    phonemes = _segments_to_timing(ends, duration)
    return Utterance(audio=audio, sample_rate=sample_rate, phonemes=phonemes, words=[], text=text,
                     voice=voice, rate_wpm=rate_wpm, pitch=pitch, native_rate=int(rate))

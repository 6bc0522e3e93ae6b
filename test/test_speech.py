"""Speech synthesis through libespeak-ng: audio, phoneme timing, voices, errors."""
import threading

import numpy as np
import pytest

from avatar_forcing_ros.corpus.speech import SpeechError, available_voices, synthesize


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def test_hello_world_has_plausible_length_and_energy():
    u = synthesize("Hello world")
    assert u.sample_rate == 16000
    assert u.audio.dtype == np.float32 and u.audio.ndim == 1
    assert 0.5 < u.duration_s < 2.5
    assert _rms(u.audio) > 0.02
    assert np.abs(u.audio).max() <= 1.0


def test_phoneme_times_increase_and_lie_inside_the_audio():
    u = synthesize("Hello world. How are you today?")
    assert len(u.phonemes) >= 15
    starts = np.array([p.start_s for p in u.phonemes])
    ends = np.array([p.end_s for p in u.phonemes])
    assert np.all(np.diff(starts) > 0)
    assert np.all(ends > starts)
    assert np.all(ends[:-1] <= starts[1:] + 1e-9)
    assert starts[0] >= 0 and ends[-1] <= u.duration_s + 1e-9
    assert [p.symbol for p in u.phonemes[:4]] == ["h", "@", "l", "oU"]


def test_audio_is_quiet_outside_the_phonemes_span():
    u = synthesize("Hello world.")
    sr = u.sample_rate
    first, last = u.phonemes[0].start_s, u.phonemes[-1].end_s
    inside = u.audio[int(first * sr):int(last * sr)]
    # the synthesiser's filters ring a little past the last phoneme: allow 30 ms
    outside = np.concatenate([u.audio[:int(first * sr)], u.audio[int((last + 0.03) * sr):]])
    assert outside.size > 0.1 * sr  # the sentence-end pause is there to be checked
    assert _rms(outside) < 0.1 * _rms(inside)


def test_words_are_reported_in_order_with_their_text():
    u = synthesize("Hello brave new world")
    assert [w.text for w in u.words] == ["Hello", "brave", "new", "world"]
    starts = [w.start_s for w in u.words]
    assert starts == sorted(starts)
    assert all(w.end_s > w.start_s for w in u.words)


def test_slower_rate_gives_longer_speech():
    text = "The weather was lovely on our walk along the river."
    slow = synthesize(text, rate_wpm=110)
    fast = synthesize(text, rate_wpm=260)
    assert slow.duration_s > 1.5 * fast.duration_s


def test_different_voices_give_different_durations():
    text = "I think we should meet again next week."
    durations = {v: synthesize(text, voice=v).duration_s for v in ("en-us", "en-gb+f4", "de")}
    assert len({round(d, 3) for d in durations.values()}) == 3


def test_language_code_resolves_to_an_installed_voice():
    u = synthesize("Good morning", voice="en-gb")
    assert u.duration_s > 0.3 and _rms(u.audio) > 0.02


def test_output_sample_rate_is_respected():
    a = synthesize("Hello world", sample_rate=16000)
    b = synthesize("Hello world", sample_rate=22050)
    assert b.sample_rate == 22050
    assert abs(a.duration_s - b.duration_s) < 0.01


def test_repeated_synthesis_has_identical_phoneme_timing():
    # espeak carries its glottal phase between calls, so samples may shift by a pitch period
    a = synthesize("Same words twice", voice="en-us+f3", pitch=70)
    b = synthesize("Same words twice", voice="en-us+f3", pitch=70)
    # the same phonemes in the same order at the same times; a start at the very end is
    # clamped to the duration, which moves with that phase, so times get the same 5 ms
    assert [p.symbol for p in a.phonemes] == [p.symbol for p in b.phonemes]
    np.testing.assert_allclose([p.start_s for p in a.phonemes], [p.start_s for p in b.phonemes],
                               atol=0.005)
    np.testing.assert_allclose([p.end_s for p in a.phonemes], [p.end_s for p in b.phonemes],
                               atol=0.005)
    assert abs(a.duration_s - b.duration_s) < 0.02


def test_concurrent_calls_from_threads_keep_their_own_text():
    texts = ["One two three", "Four five six", "Seven eight nine", "Ten eleven twelve"]
    serial = [[p.symbol for p in synthesize(t).phonemes] for t in texts]
    results = [None] * len(texts)

    def work(i):
        results[i] = [p.symbol for p in synthesize(texts[i]).phonemes]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == serial


def test_available_voices_lists_english_and_german():
    voices = available_voices()
    assert "gmw/en-US" in voices and "gmw/de" in voices


@pytest.mark.parametrize("text", ["", "   \n", None])
def test_empty_text_is_a_speech_error(text):
    with pytest.raises(SpeechError, match="empty"):
        synthesize(text)


def test_unknown_voice_is_a_speech_error():
    with pytest.raises(SpeechError, match="no voice 'zz-qq'"):
        synthesize("hello", voice="zz-qq")


def test_unknown_voice_variant_is_a_speech_error():
    with pytest.raises(SpeechError, match="variant 'nosuch'"):
        synthesize("hello", voice="en-us+nosuch")


@pytest.mark.parametrize("kwargs, message", [
    ({"rate_wpm": 10}, "rate_wpm"),
    ({"pitch": 150}, "pitch"),
    ({"sample_rate": 0}, "sample_rate"),
])
def test_out_of_range_parameters_are_speech_errors(kwargs, message):
    with pytest.raises(SpeechError, match=message):
        synthesize("hello", **kwargs)


def test_text_with_nul_is_a_speech_error():
    with pytest.raises(SpeechError, match="NUL"):
        synthesize("hel\0lo")


# --- other synthesizers (flite, festival) ---------------------------------------------------------
@pytest.mark.parametrize("voice", ["flite:slt", "flite:awb", "festival:kal_diphone"])
def test_other_synthesizers_speak_with_phoneme_timing_in_espeak_mnemonics(voice):
    u = synthesize("Hello world. How are you today?", voice=voice)
    assert u.sample_rate == 16000 and u.audio.dtype == np.float32
    assert 1.0 < u.duration_s < 4.0 and _rms(u.audio) > 0.01
    starts = np.array([p.start_s for p in u.phonemes])
    ends = np.array([p.end_s for p in u.phonemes])
    assert len(u.phonemes) >= 15 and np.all(np.diff(starts) > 0) and np.all(ends > starts)
    assert ends[-1] <= u.duration_s + 1e-6
    assert [p.symbol for p in u.phonemes[:4]] == ["h", "@", "l", "oU"]  # CMU hh ax l ow, mapped
    # the timing belongs to this audio: it is louder inside the words than before the first phoneme
    sr = u.sample_rate
    assert _rms(u.audio[int(starts[0] * sr):int(ends[-1] * sr)]) > 3 * _rms(u.audio[:max(1, int(starts[0] * sr) - 800)])


def test_other_synthesizer_rate_stretches_its_timing_with_its_audio():
    slow = synthesize("Good morning to you", voice="flite:rms", rate_wpm=110)
    fast = synthesize("Good morning to you", voice="flite:rms", rate_wpm=220)
    assert slow.duration_s > 1.4 * fast.duration_s
    assert slow.phonemes[-1].end_s > 1.4 * fast.phonemes[-1].end_s


def test_unknown_voice_of_another_synthesizer_is_a_speech_error():
    with pytest.raises(SpeechError, match="festival"):
        synthesize("hello", voice="festival:nosuch")
    with pytest.raises(SpeechError, match="flite"):
        synthesize("hello", voice="flite:nosuch")

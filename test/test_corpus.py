"""The dyadic corpus: visemes, the conversation simulator, the dataset format and generator."""
import json

import numpy as np
import pytest

from avatar_forcing_ros.corpus.dataset import (DatasetError, DyadicSession, generate_corpus,
                                               load_dataset, main_generate, write_dataset)
from avatar_forcing_ros.corpus.simulator import (TEST_VOICES, TRAIN_VOICES, Persona,
                                                 frame_intonation, sentences, simulate_session,
                                                 voices)
from avatar_forcing_ros.corpus.visemes import viseme_targets, viseme_track
from avatar_forcing_ros.core.motion import AF_MOTION_V1
from avatar_forcing_ros.corpus.speech import Phoneme, synthesize

FPS = 25
JAW, FUNNEL, PUCKER = 0, 1, 2
PITCH = AF_MOTION_V1.index("head_pitch")


def _held(symbol, before="t", after="t", dur=0.3):
    """A phoneme held for `dur` seconds between two short consonants; its middle frame's shape."""
    ph = [Phoneme(0.10, 0.18, before), Phoneme(0.18, 0.18 + dur, symbol),
          Phoneme(0.18 + dur, 0.26 + dur, after)]
    track = viseme_track(ph, 25)
    return track[int(round((0.18 + dur / 2) * FPS))]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(root / "a", n_sessions=2, seconds_per_session=6.0, seed=3)
    return root


# --- visemes --------------------------------------------------------------------------------
def test_open_vowel_opens_the_jaw_more_than_m():
    assert _held("a")[JAW] > 0.5
    assert _held("a")[JAW] > _held("m")[JAW] + 0.4


def test_bilabials_close_the_lips_between_open_vowels():
    for b in ("p", "b", "m"):
        ph = [Phoneme(0.1, 0.35, "a"), Phoneme(0.35, 0.47, b), Phoneme(0.47, 0.75, "a")]
        jaw = viseme_track(ph, 25)[:, JAW]
        closed = jaw[int(0.35 * FPS):int(0.47 * FPS) + 1].min()
        assert closed < 0.05 and jaw[int(0.25 * FPS)] > 0.5, b


def test_rounded_vowels_funnel_and_pucker_unlike_spread_ones():
    for rounded in ("u:", "o", "U", "w"):
        for spread in ("i:", "a", "E"):
            r, s = _held(rounded), _held(spread)
            assert r[FUNNEL] > s[FUNNEL] + 0.3 and r[PUCKER] > s[PUCKER] + 0.3, (rounded, spread)


def test_lips_anticipate_the_next_phoneme():
    ph = [Phoneme(0.0, 0.4, "m"), Phoneme(0.4, 0.8, "a")]
    track = viseme_track(ph, 25)
    assert track[int(0.4 * FPS), JAW] > 0.2  # already opening at the vowel's first frame


def test_visemes_of_real_speech_open_on_vowels_and_close_on_m():
    u = synthesize("mama")
    n = int(np.ceil(u.duration_s * FPS))
    jaw = viseme_targets(u.phonemes, n)[:, JAW]
    m_frames = [int(round((p.start_s + p.end_s) / 2 * FPS)) for p in u.phonemes if p.symbol == "m"]
    vowel_frames = [int(round((p.start_s + p.end_s) / 2 * FPS)) for p in u.phonemes
                    if p.symbol[0] in "aA"]
    assert m_frames and vowel_frames
    assert jaw[vowel_frames].min() > jaw[m_frames[1:]].max() + 0.2


def test_viseme_targets_have_three_channels_per_frame():
    v = viseme_targets([Phoneme(0.0, 0.2, "a")], 10)
    assert v.shape == (10, 3) and v.dtype == np.float32
    assert viseme_targets([], 0).shape == (0, 3)


# --- the simulator ----------------------------------------------------------------------------
def _quiet(voice, **kw):
    base = dict(nod_propensity=0.0, smile_propensity=0.01, mirror_propensity=0.0,
                laugh_propensity=0.0)
    base.update(kw)
    return Persona(voice, **base)


def test_listener_nods_follow_the_speakers_pauses_with_a_delay():
    s = simulate_session(11, 60.0, avatar=_quiet("en-us", nod_propensity=1.0),
                         user=_quiet("en-gb"))
    cues = [f for f in s.meta["backchannel"] if 10 <= f < s.avatar_motion.shape[0] - 30]
    assert len(cues) >= 5
    speed = np.abs(np.diff(s.avatar_motion[:, PITCH], prepend=s.avatar_motion[0, PITCH]))
    lags = np.arange(-10, 30)
    locked = np.array([speed[[c + lag for c in cues]].mean() for lag in lags])
    peak = lags[locked.argmax()]
    assert 4 <= peak <= 25  # 0.16 .. 1 s after the pause: delayed, not anticipated
    assert locked.max() > 2 * locked[lags <= 0].mean()


def test_listener_without_nod_propensity_does_not_nod_at_pauses():
    s = simulate_session(11, 30.0, avatar=_quiet("en-us"), user=_quiet("en-gb"))
    assert s.meta["backchannel"] and s.meta["avatar_nods"] == []


def test_a_speaker_answers_the_listeners_nod_and_only_when_inclined_to():
    """The user nods at every pause of the avatar; an avatar with nod_back_propensity 1 answers
    each nod with its own a little later, one with 0 never does."""
    answering = simulate_session(11, 60.0, avatar=_quiet("en-us", nod_back_propensity=1.0, expressiveness=0.2),
                                 user=_quiet("en-gb", nod_propensity=1.0))
    answers = answering.meta["avatar_nods_answered"]  # [the user's nod start, the avatar's]
    assert len(answers) >= 3
    assert all(4 <= start - cue <= 20 for cue, start in answers)  # 0.16 .. 0.8 s later
    silent = simulate_session(11, 60.0, avatar=_quiet("en-us", nod_back_propensity=0.0, expressiveness=0.2),
                              user=_quiet("en-gb", nod_propensity=1.0))
    assert silent.meta["avatar_nods_answered"] == []

    def dip(motion):  # how far the head drops in the half second after each answer's start
        return np.mean([motion[start, PITCH] - motion[start:start + 12, PITCH].min() for _, start in answers])
    assert dip(answering.avatar_motion) > 0.03 and dip(answering.avatar_motion) > 1.5 * dip(silent.avatar_motion)


def test_the_jaw_opens_wider_on_louder_syllables_at_the_same_mean_opening(monkeypatch):
    """The jaw follows the voice's loudness relative to its own loud parts (vocal effort): its
    correlation with the speech envelope rises with JAW_LOUDNESS, the mean opening does not."""
    import avatar_forcing_ros.corpus.simulator as sim
    from avatar_forcing_ros.generation.evaluation import speaking_mask, speech_envelope
    jaw = AF_MOTION_V1.index("jawOpen")
    out = {}
    for w in (0.0, sim.JAW_LOUDNESS):
        monkeypatch.setattr(sim, "JAW_LOUDNESS", w)
        s = simulate_session(4, 20.0, avatar=_quiet("en-us"), user=_quiet("en-gb"))
        T = s.avatar_motion.shape[0]
        speaking = speaking_mask(T, s.meta["avatar_speaking"])
        env = speech_envelope(s.avatar_audio.astype(np.float32) / 32768.0, T)
        out[w] = (np.corrcoef(s.avatar_motion[speaking, jaw], env[speaking])[0, 1],
                  s.avatar_motion[speaking, jaw].mean())
    (r_phonemes, mean_phonemes), (r_loud, mean_loud) = out[0.0], out[sim.JAW_LOUDNESS]
    assert r_loud > r_phonemes + 0.05
    assert mean_loud == pytest.approx(mean_phonemes, rel=0.15)


def test_smile_mirroring_comes_after_the_other_smiles():
    s = simulate_session(5, 60.0, avatar=_quiet("en-us", mirror_propensity=1.0),
                         user=_quiet("en-gb", smile_propensity=8.0))
    user_smile = s.user_motion[:, AF_MOTION_V1.index("mouthSmileLeft")]
    avatar_smile = s.avatar_motion[:, AF_MOTION_V1.index("mouthSmileLeft")]
    # while listening the avatar's only smiles are mirrors: the lag of best match is positive
    lags = np.arange(-25, 26)
    a, u = avatar_smile - avatar_smile.mean(), user_smile - user_smile.mean()
    corr = [np.dot(a[max(lag, 0):len(a) + min(lag, 0)], u[max(-lag, 0):len(u) + min(-lag, 0)])
            for lag in lags]
    best = lags[int(np.argmax(corr))]
    assert 5 <= best <= 22  # 0.2 .. 0.9 s
    mirrors = [r for r in s.meta["smile_reactions"]
               if r["side"] == "avatar" and r["cause"] == "mirror"]
    assert mirrors and all(r["start"] > r["cue"] for r in mirrors)


def test_the_listener_smiles_back_at_laughter():
    s = simulate_session(2, 60.0, avatar=_quiet("en-us"),
                         user=_quiet("en-gb", laugh_propensity=1.0))
    smile = s.avatar_motion[:, AF_MOTION_V1.index("mouthSmileRight")]
    assert s.meta["user_laughs"]
    answered = [smile[a:b + 25].max() > 0.4 for a, b in s.meta["user_laughs"]]
    assert len(answered) >= 3 and np.mean(answered) >= 0.5  # contagious, though not always
    laughs = np.concatenate([np.arange(a, b) for a, b in s.meta["user_laughs"]])
    assert s.user_motion[laughs, AF_MOTION_V1.index("cheekSquintLeft")].mean() > 0.3


def test_speech_audio_is_where_the_speaking_annotations_are():
    s = simulate_session(4, 20.0)
    audio = s.avatar_audio.reshape(-1, 640)
    speaking = np.zeros(audio.shape[0], bool)
    for a, b in s.meta["avatar_speaking"] + s.meta["avatar_laughs"]:
        speaking[a:b] = True
    rms = np.sqrt((audio ** 2).mean(axis=1))
    assert speaking.any() and (~speaking).any()
    assert rms[speaking].mean() > 10 * rms[~speaking].mean()


def test_avatar_mouth_follows_its_viseme_targets():
    s = simulate_session(4, 20.0)
    jaw = s.avatar_motion[:, AF_MOTION_V1.index("jawOpen")]
    assert np.corrcoef(jaw, s.avatar_viseme_targets[:, JAW])[0, 1] > 0.8


def test_motion_is_in_range_and_shaped_like_af_motion_v1():
    s = simulate_session(8, 10.0)
    for m in (s.avatar_motion, s.user_motion):
        assert m.shape == (250, AF_MOTION_V1.dim) and m.dtype == np.float32
        np.testing.assert_array_equal(m, AF_MOTION_V1.clip(m))
    assert s.avatar_audio.shape == s.user_audio.shape == (250 * 640,)


def test_blinks_come_at_a_human_rate():
    s = simulate_session(9, 60.0)
    blink = s.avatar_motion[:, AF_MOTION_V1.index("eyeBlinkLeft")]
    onsets = np.flatnonzero((blink[1:] > 0.9) & (blink[:-1] <= 0.9))
    assert 10 <= len(onsets) <= 32


def test_gaze_turns_away_when_a_turn_starts():
    s = simulate_session(6, 60.0)
    gaze = np.abs(s.avatar_motion[:, AF_MOTION_V1.index("gaze_yaw")])
    starts = [a for a, b in s.meta["avatar_gaze_aversions"]]
    assert starts
    assert np.mean([gaze[a + 3:a + 12].mean() for a in starts]) > 3 * np.median(gaze)


def test_intonation_measures_a_pitch_rise_in_semitones():
    t = np.arange(16000) / 16000
    f0 = np.where(t < 0.5, 200.0, 252.0)  # four semitones up half way
    tone = (0.3 * np.sin(2 * np.pi * np.cumsum(f0) / 16000)).astype(np.float32)
    tone[:3200] = 0  # silence is unvoiced
    semis = frame_intonation(tone, 25)
    assert np.all(semis[:5] == 0)
    assert abs((semis[15:].mean() - semis[6:12].mean()) - 4.0) < 0.3


def test_train_and_test_splits_share_no_sentences_or_voices():
    assert not set(sentences("train")) & set(sentences("test"))
    assert not set(voices("train")) & set(voices("test"))
    assert len(sentences("train")) >= 40 and len(sentences("test")) >= 10
    s = simulate_session(1, 20.0, split="test")
    said = s.meta["texts"]["avatar"] + s.meta["texts"]["user"]
    assert said and set(said) <= set(sentences("test"))
    assert set(s.meta["voices"].values()) <= set(TEST_VOICES)
    assert not set(s.meta["voices"].values()) & set(TRAIN_VOICES)


def test_other_split_speaks_held_out_sentences_with_other_synthesizers():
    s = simulate_session(2, 8.0, split="other")
    said = s.meta["texts"]["avatar"] + s.meta["texts"]["user"]
    assert said and set(said) <= set(sentences("test"))
    assert set(s.meta["voices"].values()) <= set(voices("other"))
    assert all(v.split(":")[0] in ("flite", "festival") for v in s.meta["voices"].values())
    assert np.abs(s.avatar_audio).max() > 0.05 or np.abs(s.user_audio).max() > 0.05


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="split"):
        sentences("dev")


# --- the dataset format and the generator ---------------------------------------------------------
def test_same_seed_gives_identical_arrays_and_another_seed_different_ones(corpus):
    generate_corpus(corpus / "b", n_sessions=2, seconds_per_session=6.0, seed=3, workers=1)
    generate_corpus(corpus / "c", n_sessions=2, seconds_per_session=6.0, seed=4)
    a, b, c = (load_dataset(corpus / x) for x in "abc")
    for sa, sb in zip(a, b):
        for name in ("avatar_audio", "user_audio", "avatar_motion", "user_motion",
                     "avatar_viseme_targets"):
            np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name))
        assert sa.meta == sb.meta
    assert not np.array_equal(a[0].avatar_motion, c[0].avatar_motion)
    assert a[0].meta["texts"] != c[0].meta["texts"] or a[0].meta["voices"] != c[0].meta["voices"]


def test_another_take_redraws_the_avatars_face_in_the_same_conversation(corpus):
    """avatar_take: the conversation (speech, the user's face, the planned reactions) is the
    corpus's own, the avatar's face another draw of the same listener."""
    generate_corpus(corpus / "take", n_sessions=2, seconds_per_session=6.0, seed=3, avatar_take=1)
    first, take = load_dataset(corpus / "a"), load_dataset(corpus / "take")
    for sa, st in zip(first, take):
        for name in ("avatar_audio", "user_audio", "user_motion", "avatar_viseme_targets"):
            np.testing.assert_array_equal(getattr(sa, name), getattr(st, name))
        assert st.meta["avatar_take"] == 1 and "avatar_take" not in sa.meta
        assert st.meta["smile_reactions"] == sa.meta["smile_reactions"]
        assert st.meta["avatar_nods"] == sa.meta["avatar_nods"]  # planned back-channel nods stay
        differs = np.abs(st.avatar_motion - sa.avatar_motion).max(axis=0)
        head_tx = AF_MOTION_V1.index("head_tx")
        assert differs[head_tx] > 1e-3  # its posture drifts its own way
        # the mouth still says the same words: the articulation differs only by the idle jaw
        speaking = np.zeros(sa.frames, bool)
        for a, b in sa.meta["avatar_speaking"]:
            speaking[a:b] = True
        jaw = AF_MOTION_V1.index("jawOpen")
        assert np.corrcoef(sa.avatar_motion[speaking, jaw], st.avatar_motion[speaking, jaw])[0, 1] > 0.95
    assert json.loads((corpus / "take" / "dataset.json").read_text())["generator"]["avatar_take"] == 1


def test_a_redrawn_take_draws_the_listeners_own_choices_again(corpus):
    """redraw_reactions: the user (speech, face) and the avatar's speech are the corpus's own;
    the avatar's smiles and nods are its persona's rules drawn again, so at least one of its
    reactions in these sessions differs from the first take's."""
    generate_corpus(corpus / "redrawn", n_sessions=2, seconds_per_session=6.0, seed=3, avatar_take=2,
                    redraw_reactions=True)
    first, redrawn = load_dataset(corpus / "a"), load_dataset(corpus / "redrawn")
    changed = 0
    for sa, sr in zip(first, redrawn):
        for name in ("avatar_audio", "user_audio", "user_motion", "avatar_viseme_targets"):
            np.testing.assert_array_equal(getattr(sa, name), getattr(sr, name))
        assert sr.meta["redraw_reactions"] is True and sr.meta["avatar_take"] == 2
        user_reactions = [r for r in sa.meta["smile_reactions"] if r["side"] == "user"]
        assert [r for r in sr.meta["smile_reactions"] if r["side"] == "user"] == user_reactions
        mine = [r for r in sr.meta["smile_reactions"] if r["side"] == "avatar"]
        changed += (mine != [r for r in sa.meta["smile_reactions"] if r["side"] == "avatar"]
                    or sr.meta["avatar_nods"] != sa.meta["avatar_nods"])
    assert changed >= 1
    info = json.loads((corpus / "redrawn" / "dataset.json").read_text())["generator"]
    assert info["redraw_reactions"] is True


def test_redrawn_smiles_keep_the_user_and_answer_only_the_users_own_smiles():
    from avatar_forcing_ros.corpus.simulator import AVATAR, USER, Smile, _redrawn_avatar_smiles
    plan = [Smile(USER, 1.0, 2.0, 0.5, "spontaneous"), Smile(USER, 4.0, 5.0, 0.9, "laugh"),
            Smile(AVATAR, 3.0, 4.0, 0.5, "spontaneous"), Smile(AVATAR, 6.0, 7.0, 0.9, "laugh"),
            Smile(USER, 3.5, 4.5, 0.5, "mirror", 3.0), Smile(AVATAR, 1.4, 2.5, 0.5, "mirror", 1.0)]
    always = Persona(voice="en-us", mirror_propensity=1.0, smile_propensity=1e-6)
    never = Persona(voice="en-us", mirror_propensity=0.0, smile_propensity=1e-6)
    rng = np.random.default_rng(0)
    got = _redrawn_avatar_smiles(rng, (always, never), plan, 8.0)
    assert [s for s in got if s.side == USER] == [s for s in plan if s.side == USER]  # the user stays
    assert Smile(AVATAR, 6.0, 7.0, 0.9, "laugh") in got  # its own laugh is in its speech: it stays
    assert Smile(AVATAR, 3.0, 4.0, 0.5, "spontaneous") not in got  # its own smile is drawn again
    answers = [s for s in got if s.side == AVATAR and s.cue_s is not None]
    assert sorted(s.cue_s for s in answers if s.cause == "mirror") == [1.0]  # the user's smile, not the user's mirror
    got = _redrawn_avatar_smiles(np.random.default_rng(0), (never, always), plan, 8.0)
    assert not [s for s in got if s.side == AVATAR and s.cause == "mirror"]


def test_a_redrawn_take_needs_another_take(tmp_path):
    with pytest.raises(ValueError, match="avatar_take"):
        simulate_session(1, 4.0, "test", redraw_reactions=True)
    with pytest.raises(DatasetError, match="avatar_take"):  # refused before anything is written
        generate_corpus(tmp_path / "c", n_sessions=1, seconds_per_session=4.0, seed=1, redraw_reactions=True)
    assert not (tmp_path / "c").exists()


def test_generated_dataset_has_the_af_dyadic_v1_layout(corpus):
    info = json.loads((corpus / "a" / "dataset.json").read_text())
    assert info["format"] == "af-dyadic-v1" and info["motion_space"] == "af-motion-v1"
    assert info["fps"] == 25 and info["sample_rate"] == 16000 and len(info["sessions"]) == 2
    s = load_dataset(corpus / "a")[0]
    assert s.frames == 150 and s.avatar_audio.shape == (150 * 640,)
    assert s.user_present.shape == (150,) and np.all(s.user_present == 1)
    for key in ("avatar_speaking", "user_speaking", "backchannel", "user_smiles", "user_laughs",
                "seed", "voices", "texts"):
        assert key in s.meta


def _session(name="s0", T=50, seed=0):
    rng = np.random.default_rng(seed)
    return DyadicSession(
        name=name,
        avatar_audio=(0.1 * rng.standard_normal(T * 640)).astype(np.float32),
        user_audio=(0.1 * rng.standard_normal(T * 640)).astype(np.float32),
        avatar_motion=AF_MOTION_V1.clip(rng.uniform(-0.5, 1, (T, 28)).astype(np.float32)),
        user_motion=AF_MOTION_V1.clip(rng.uniform(-0.5, 1, (T, 28)).astype(np.float32)),
        user_present=np.ones(T, np.float32),
        avatar_viseme_targets=rng.uniform(0, 1, (T, 3)).astype(np.float32),
        meta={"seed": seed, "voices": {}, "texts": {}, "avatar_speaking": [[0, 10]],
              "user_speaking": [[12, 30]], "backchannel": [30], "user_smiles": [],
              "user_laughs": [[40, 45]]})


def test_dataset_round_trip_keeps_arrays_and_meta(tmp_path):
    sessions = [_session("one", seed=1), _session("two", T=60, seed=2)]
    write_dataset(tmp_path / "d", sessions, {"source": "test"})
    loaded = load_dataset(tmp_path / "d")
    assert [s.name for s in loaded] == ["one", "two"]
    for s, r in zip(sessions, loaded):
        np.testing.assert_array_equal(s.avatar_motion, r.avatar_motion)
        np.testing.assert_array_equal(s.user_motion, r.user_motion)
        np.testing.assert_array_equal(s.avatar_viseme_targets, r.avatar_viseme_targets)
        np.testing.assert_allclose(s.avatar_audio, r.avatar_audio, atol=1.0 / 32767)
        assert r.meta == s.meta


@pytest.fixture
def written(tmp_path):
    write_dataset(tmp_path / "d", [_session("s0")], {"source": "test"})
    return tmp_path / "d"


def test_wrong_motion_shape_is_an_error_naming_the_file(written):
    np.save(written / "s0" / "user_motion.npy", np.zeros((50, 27), np.float32))
    with pytest.raises(DatasetError, match=r"user_motion\.npy.*shape \(50, 27\)"):
        load_dataset(written)


def test_mismatched_frame_count_is_an_error_naming_the_file(written):
    np.save(written / "s0" / "avatar_viseme_targets.npy", np.zeros((49, 3), np.float32))
    with pytest.raises(DatasetError, match=r"avatar_viseme_targets\.npy"):
        load_dataset(written)


def test_wrong_motion_space_is_an_error_naming_dataset_json(written):
    info = json.loads((written / "dataset.json").read_text())
    info["motion_space"] = "af-motion-v2"
    (written / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"dataset\.json: motion_space is 'af-motion-v2'"):
        load_dataset(written)


def test_missing_file_is_an_error_naming_it(written):
    (written / "s0" / "user_audio.wav").unlink()
    with pytest.raises(DatasetError, match=r"user_audio\.wav: missing"):
        load_dataset(written)


def test_audio_of_the_wrong_length_is_an_error_naming_the_file(written):
    import soundfile as sf
    sf.write(str(written / "s0" / "avatar_audio.wav"), np.zeros(1000, np.float32), 16000)
    with pytest.raises(DatasetError, match=r"avatar_audio\.wav: 1000 samples"):
        load_dataset(written)


def test_truncated_npy_is_an_error_naming_the_file(written):
    path = written / "s0" / "avatar_motion.npy"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match=r"avatar_motion\.npy"):
        load_dataset(written)


def test_annotation_outside_the_session_is_an_error_naming_meta_json(written):
    meta = json.loads((written / "s0" / "meta.json").read_text())
    meta["backchannel"] = [500]
    (written / "s0" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"meta\.json: backchannel"):
        load_dataset(written)


def test_missing_dataset_json_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset\.json: missing"):
        load_dataset(tmp_path)


def test_writing_into_a_non_empty_directory_is_refused(written):
    with pytest.raises(DatasetError, match="not an empty directory"):
        write_dataset(written, [_session("s1")], {})
    with pytest.raises(DatasetError, match="not an empty directory"):
        generate_corpus(written, 1, 4.0, seed=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_sessions": 0}, "n_sessions"),
    ({"seconds_per_session": 0.5}, "seconds_per_session"),
    ({"split": "dev"}, "split"),
])
def test_bad_generator_arguments_are_errors(tmp_path, kwargs, message):
    args = dict(n_sessions=1, seconds_per_session=4.0, seed=0, split="train")
    args.update(kwargs)
    with pytest.raises(DatasetError, match=message):
        generate_corpus(tmp_path / "x", **args)


def test_corpus_command_writes_a_loadable_dataset(tmp_path, capsys):
    rc = main_generate(["--out", str(tmp_path / "d"), "--sessions", "1", "--seconds", "3",
                        "--seed", "7", "--split", "test"])
    assert rc == 0 and "wrote 1 sessions" in capsys.readouterr().out
    (s,) = load_dataset(tmp_path / "d")
    assert s.frames == 75 and s.meta["split"] == "test"


def test_corpus_command_reports_a_bad_output_directory(written, capsys):
    assert main_generate(["--out", str(written), "--sessions", "1", "--seconds", "3"]) == 1
    assert "not an empty directory" in capsys.readouterr().out

"""The training corpus of af_forcing_v2 (same seeds) with one thing of sim-v2 taken out: the
answering nods. ``user``: the user no longer answers the avatar's back-channel nods with a nod
of their own; ``both``: neither side answers the other's (sim-v1's nods, with sim-v2's jaw);
``v1``: no answers and the jaw from the phonemes alone (JAW_LOUDNESS 0), sim-v1's two rules;
``v1voices``: that, and the 11 training voices and narrower rates and pitches of before
90ae472: the corpus af_forcing_v1 was trained on, drawn by today's simulator.
An ablation for the lost back-channel nods, not a corpus the product uses.

    python benchmarks/results/backchannel-2026-12-07/corpus_without_answers.py /tmp/afe3/train /tmp/ab/train user
    python benchmarks/results/backchannel-2026-12-07/corpus_without_answers.py /tmp/afe3/train /tmp/ab2/train both
    python benchmarks/results/backchannel-2026-12-07/corpus_without_answers.py /tmp/afe3/train /tmp/ab3/train v1
    python benchmarks/results/backchannel-2026-12-07/corpus_without_answers.py /tmp/afe3/train /tmp/ab5/train v1voices
"""
import json
import multiprocessing
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.corpus import simulator  # noqa: E402
from avatar_forcing_ros.corpus.dataset import _generate_one, write_index  # noqa: E402

_plan_nods = simulator._plan_nods
SIDES = {"user": (simulator.USER,), "both": (simulator.USER, simulator.AVATAR),
         "v1": (simulator.USER, simulator.AVATAR), "v1voices": (simulator.USER, simulator.AVATAR)}
V1_VOICES = ("en-us", "en-gb", "en-us+f3", "en+m3", "en-gb+f2", "en-us+m1", "de", "fr", "es", "en-gb-scotland",
             "en-us+f4")
_random_persona = simulator.random_persona


def _v1_persona(rng, split="train", exclude_voice=None):
    """Before 90ae472: 11 training voices, the narrow rates and pitches (those of the test split)."""
    test_voices = simulator.TEST_VOICES
    simulator.TEST_VOICES = V1_VOICES
    try:
        return _random_persona(rng, "test" if split == "train" else split, exclude_voice)
    finally:
        simulator.TEST_VOICES = test_voices


_without = ()  # the sides whose answering nods are dropped (set by main before the workers fork)


def _without_answers(rng, personas, n, utterances, pauses):
    nods = _plan_nods(rng, personas, n, utterances, pauses)  # same draws as sim-v2
    for side in _without:
        nods[side] = [d for d in nods[side] if d.kind != "answer"]
    return nods


def main(source, out, which="user"):
    global _without
    cfg = json.loads((Path(source) / "dataset.json").read_text())["generator"]
    _without = SIDES[which]
    if which in ("v1", "v1voices"):
        simulator.JAW_LOUDNESS = 0.0
    if which == "v1voices":
        simulator.random_persona = _v1_persona
    simulator._plan_nods = _without_answers
    Path(out).mkdir(parents=True)
    names = sorted(cfg["session_seeds"])
    jobs = [(out, n, cfg["session_seeds"][n], cfg["seconds_per_session"], cfg["split"], 0, False)
            for n in names]
    # the corpus command's own worker, forked after the patch (so the patch holds in it), one
    # session per fresh process (espeak-ng keeps state between calls)
    with multiprocessing.get_context("fork").Pool(2, maxtasksperchild=1) as pool:
        pool.map(_generate_one, jobs, chunksize=1)
    write_index(Path(out), names, {**cfg, "ablation": f"no answering nods: {which}"})


if __name__ == "__main__":
    main(*sys.argv[1:])

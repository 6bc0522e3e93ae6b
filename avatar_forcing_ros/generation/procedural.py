"""The procedural motion model: the fallback when no learned model is loaded, and the
baseline the learned model is measured against.

Hand-written rules over the same conditions the learned model sees (avatar speech features,
user speech features, user motion):
- speaking: speech energy opens the jaw; spectral balance rounds (funnel/pucker) or stretches
  the lips; energy rises and phrase ends move the head (prosody nods).
- listening: nods at the user's pauses after they spoke, smile mirroring with a delay, a nod
  echo when the user nods, attention (gaze) to the user's face.
- always: blinks, slow head drift, gaze saccades. Deterministic for a seed.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from ..core.motion import AF_MOTION_V1, MotionSpace
from ..core.motion_model import BlockConditions, MotionModel

# Log-RMS (natural log, full scale 1.0) that counts as speech; -4.6 is about -40 dBFS.
SPEECH_LOG_RMS = -4.6
_SPEECH_RANGE = 3.0  # log-RMS span from threshold to a fully open jaw


def _smooth(prev: float, target: float, attack: float, release: float) -> float:
    k = attack if target > prev else release
    return prev + k * (target - prev)


class ProceduralMotionModel(MotionModel):
    name = "procedural"

    def __init__(self, space: MotionSpace = AF_MOTION_V1, fps: float = 25.0,
                 block_frames: int = 2, seed: int = 0, expressiveness: float = 1.0):
        if space.id != AF_MOTION_V1.id:
            raise ValueError(f"the procedural model drives {AF_MOTION_V1.id}, not {space.id}")
        self.space, self.fps, self.block_frames = space, float(fps), int(block_frames)
        self.expressiveness = float(expressiveness)
        self.seed = int(seed)
        self._i = {n: space.index(n) for n in space.names}
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        seed = self.seed if seed is None else int(seed)
        self._rng = np.random.default_rng(seed)
        # Reactions draw from their own stream so that idle motion does not depend on them.
        self._react_rng = np.random.default_rng([seed, 1])
        self._v = self.space.neutral()
        self._jaw = self._round = self._stretch = 0.0
        self._drift = np.zeros(3)  # slow yaw, pitch, roll wander
        self._gaze = np.zeros(2)
        self._next_saccade = self._rng.uniform(0.5, 2.0)
        self._next_blink = self._rng.uniform(1.0, 4.0)
        self._blink_t = -1.0
        self._nod_t = -1.0
        self._nod_amp = 0.0
        self._t = 0.0
        self._prev_energy = 0.0
        self._user_voiced_s = 0.0   # how long the user has been speaking
        self._user_pause_s = 0.0    # how long since they stopped
        self._nodded_this_pause = False
        self._avatar_pause_s = 1.0
        self._prev_user_pitch = 0.0
        delay = int(round(0.5 * self.fps))  # smile mirroring lag: ~0.5 s
        self._smile_delay = deque([0.0] * delay, maxlen=delay)
        self._smile = 0.0

    # -- per-frame rules -------------------------------------------------------------------

    def next_block(self, cond: BlockConditions) -> np.ndarray:
        out = np.empty((cond.frames, self.space.dim), dtype=np.float32)
        for k in range(cond.frames):
            out[k] = self._frame(cond.avatar_audio[k], cond.user_audio[k], cond.user_motion[k],
                                 float(cond.user_present[k]))
        return out

    def _frame(self, avatar_feat, user_feat, user_motion, user_present) -> np.ndarray:
        dt, rng, i, ex = 1.0 / self.fps, self._rng, self._i, self.expressiveness
        self._t += dt
        v = self.space.neutral()

        # Speaking: energy -> jaw; spectral balance -> rounding / stretching.
        energy = float(np.clip((avatar_feat[-1] - SPEECH_LOG_RMS) / _SPEECH_RANGE, 0.0, 1.0))
        speaking = energy > 0.0
        mel = avatar_feat[:-1]
        low, high = float(mel[: len(mel) // 4].mean()), float(mel[len(mel) // 2:].mean())
        balance = np.tanh((low - high - 3.0) / 2.0) if speaking else 0.0  # >0 dark (o, u)
        self._jaw = _smooth(self._jaw, 0.85 * energy ** 0.7, 0.7, 0.45)
        self._round = _smooth(self._round, max(balance, 0.0) * energy, 0.5, 0.3)
        self._stretch = _smooth(self._stretch, max(-balance, 0.0) * energy, 0.5, 0.3)
        v[i["jawOpen"]] = self._jaw
        v[i["mouthFunnel"]] = 0.7 * self._round
        v[i["mouthPucker"]] = 0.5 * self._round
        v[i["mouthStretchLeft"]] = v[i["mouthStretchRight"]] = 0.5 * self._stretch

        # Prosody: a rise in energy nods the head slightly; a phrase end gives a settling nod.
        rise = max(energy - self._prev_energy, 0.0)
        self._prev_energy = energy
        if speaking:
            if self._avatar_pause_s > 0.3:
                self._start_nod(0.05 * ex)
            self._avatar_pause_s = 0.0
        else:
            self._avatar_pause_s += dt

        # Listening: nod at the user's pauses, echo their nods, mirror their smile.
        user_energy = float(np.clip((user_feat[-1] - SPEECH_LOG_RMS) / _SPEECH_RANGE, 0.0, 1.0))
        if user_energy > 0.0:
            self._user_voiced_s += dt
            self._user_pause_s = 0.0
            self._nodded_this_pause = False
        else:
            self._user_pause_s += dt
            if (not self._nodded_this_pause and self._user_voiced_s > 0.6
                    and self._user_pause_s > 0.25 and not speaking):
                self._nodded_this_pause = True
                self._user_voiced_s = 0.0
                if self._react_rng.random() < 0.8:
                    self._start_nod(0.12 * ex)
        user_pitch = float(user_motion[i["head_pitch"]]) if user_present > 0.3 else 0.0
        if self._prev_user_pitch - user_pitch > 0.08 and self._nod_t < 0:
            self._start_nod(0.08 * ex)  # the user nodded (pitch dropped fast): nod back
        self._prev_user_pitch = user_pitch
        user_smile = 0.0
        if user_present > 0.3:
            user_smile = 0.5 * float(user_motion[i["mouthSmileLeft"]] + user_motion[i["mouthSmileRight"]])
        self._smile_delay.append(user_smile)
        self._smile = _smooth(self._smile, 0.8 * ex * self._smile_delay[0], 0.2, 0.08)
        v[i["mouthSmileLeft"]] = v[i["mouthSmileRight"]] = self._smile
        v[i["cheekSquintLeft"]] = v[i["cheekSquintRight"]] = 0.6 * max(self._smile - 0.3, 0.0)

        # Head: slow wander (Ornstein-Uhlenbeck), prosody, nods.
        scale = np.array([0.08, 0.05, 0.04]) * (1.5 if speaking else 1.0)
        self._drift += -0.5 * dt * self._drift + scale * np.sqrt(dt) * rng.standard_normal(3)
        v[i["head_yaw"]], v[i["head_pitch"]], v[i["head_roll"]] = self._drift
        v[i["head_pitch"]] += 0.15 * rise * ex - self._nod_offset()
        v[i["browInnerUp"]] = 0.3 * rise * ex + 0.2 * self._jaw * ex
        v[i["browOuterUpLeft"]] = v[i["browOuterUpRight"]] = 0.5 * v[i["browInnerUp"]]

        # Gaze: look at the user's face when seen, with occasional saccades.
        if self._t >= self._next_saccade:
            self._gaze = rng.normal(0.0, [0.12, 0.06])
            self._next_saccade = self._t + rng.uniform(0.8, 3.0)
        target = self._gaze.copy()
        if user_present > 0.3:
            target[0] += 0.3 * float(np.clip(user_motion[i["head_tx"]], -1, 1))
        v[i["gaze_yaw"]], v[i["gaze_pitch"]] = target

        # Blinks: ~15 a minute, 200 ms each.
        if self._t >= self._next_blink:
            self._blink_t, self._next_blink = 0.0, self._t + rng.uniform(2.0, 6.0)
        if self._blink_t >= 0.0:
            closed = np.sin(np.pi * min(self._blink_t / 0.2, 1.0))
            v[i["eyeBlinkLeft"]] = v[i["eyeBlinkRight"]] = closed
            self._blink_t = self._blink_t + dt if self._blink_t + dt <= 0.2 else -1.0
        return self.space.clip(v)

    def _start_nod(self, amplitude: float) -> None:
        if self._nod_t < 0:
            self._nod_t, self._nod_amp = 0.0, amplitude

    def _nod_offset(self) -> float:
        """Head pitch offset of the running nod: one down-up cycle of 0.5 s."""
        if self._nod_t < 0:
            return 0.0
        offset = self._nod_amp * np.sin(np.pi * self._nod_t / 0.5)
        self._nod_t += 1.0 / self.fps
        if self._nod_t > 0.5:
            self._nod_t = -1.0
        return float(offset)

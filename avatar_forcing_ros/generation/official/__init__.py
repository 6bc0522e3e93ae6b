"""The paper's own network (the authors' released Avatar Forcing checkpoint), implemented here:
flow transformer + dual condition encoder (flow.py), block sampler with a bounded KV cache
(sampler.py), FLOAT-style motion auto-encoder (motion_autoencoder.py), wav2vec2 features from a
local folder (audio.py), the user's weights converted and checked (weights.py), all together
(model.py). Weights are the user's own download (CC BY-NC 4.0); none ship here."""

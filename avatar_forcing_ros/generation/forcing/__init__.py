"""The learned Avatar Forcing model (torch; onnxruntime for the exported step).

config.py      ForcingConfig (sizes, block length, cache window, sampling defaults)
network.py     AvatarForcingNet: dual condition encoder + block-causal adaLN transformer
flow.py        flow-matching maths and diffusion-forcing noise levels
sampler.py     streaming sampler with KV cache, offline recomputation, non-causal window
train.py       `avatar-forcing train` (main_train)
dpo.py         `avatar-forcing dpo` (main_dpo)
checkpoint.py  safetensors + JSON checkpoints, CheckpointError
onnx_export.py `avatar-forcing export` (main_export)
onnx_runner.py the onnxruntime runner of an export (numpy + onnxruntime, no torch)
learned_model.py  LearnedMotionModel, the MotionModel the runtime loads

Importing this package does not import torch; the modules do.
"""

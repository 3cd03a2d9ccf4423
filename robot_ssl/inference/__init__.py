"""What the robot runs: a detector file in, obstacle probabilities out, without torch.

`predictor` (ONNX Runtime), `preprocess` (the one image preparation, shared with
training), `model_config` (what a model file says it is), `integrity` (damaged model
files are refused) and `viewpoint` (the camera a model was trained with, checked against
the camera it drives with). The import contract in pyproject.toml forbids torch here,
also indirectly; whatever needs torch (checkpoints, TorchScript, export) is in
robot_ssl.learning, which calls into this package, never the other way round.
"""

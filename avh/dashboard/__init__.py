"""The Activations dashboard: a TensorBoard plugin that overlays the runs' layer distributions
(activations and gradients), their (mean, std) paths and the signal by depth.

Loaded by plain `tensorboard --logdir ...` through the `tensorboard_plugins` entry point in
pyproject.toml; `plugin.py` answers JSON routes, reading through `cache.py` (series kept per run
and tag) in the wire format of `series.py`; `runs.py` holds the rules about runs and tags;
`static/` is the frontend (no build step).
"""

"""The Activations dashboard: a TensorBoard plugin that overlays the runs' layer distributions.

Loaded by plain `tensorboard --logdir ...` through the `tensorboard_plugins` entry point in
pyproject.toml; `plugin.py` answers JSON routes, `static/` is the frontend (no build step).
"""

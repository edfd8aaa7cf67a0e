"""avh: activation histograms, statistics and figures in TensorBoard for any Keras model.

    from avh import ActivationSummaries
    model.fit(..., callbacks=[ActivationSummaries(probe_batch, log_dir="logs/run1")])

Importing `avh` is cheap: TensorFlow loads only when the callback is first used, so code that
needs only tag names (`avh.tags`) or the event reader stays light.
"""

__all__ = ["ActivationSummaries", "DEFAULT_EVERY"]

DEFAULT_EVERY = 100  # steps between summary events, unless told otherwise


def __getattr__(name):
    if name == "ActivationSummaries":
        from avh.summaries import ActivationSummaries
        return ActivationSummaries
    raise AttributeError(f"module 'avh' has no attribute {name!r}")

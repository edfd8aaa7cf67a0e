"""What TensorBoard's HParams, Text and Custom Scalars dashboards show of a run: its settings
(resolved `auto` values included), its final test metrics, and one chart per layer and statistic.

Written once, at step 0 of a new run (a resumed run must not log them twice); it reads no events.
"""
import json
import re
from pathlib import Path

import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.hparams import plugin_data_pb2

from avh.tags import (CONFIG_FILE, CONFIG_TEXT_TAG, GRADIENT_STAT_TAG, STAT_TAG, STATS,
                      TEST_SUBSET_TAG, TEST_TAG, TRAIN_TAG)

# The settings shown as HParams columns, in this order: what may differ between runs of a root.
# Values must be bool, int, float or str (TensorBoard's rule); None becomes NONE.
HPARAMS = ("activation", "norm", "init", "dropout_kind", "dropout", "optimizer", "learning_rate",
           "lr_schedule", "clip_norm", "batch_size", "total_steps", "seed", "dataset",
           "data_source", "train_examples", "dtype_policy")
NONE = "off"
# What a compare root varies (the activation and what `auto` resolves to for it) and seeds.
COMPARED = ("activation", "norm", "init", "dropout_kind", "seed", "data_source")
# Final metrics, as scalar tags (the full test set at the last step, see train.py).
METRICS = (("accuracy", "test accuracy"), ("loss", "test loss"))
# Categories of the Custom Scalars page; a chart title names SELU's target where it has one.
STAT_CATEGORIES = {"mean": ("activation mean per layer", "SELU target 0"),
                   "std": ("activation std per layer", "SELU target 1"),
                   "nonpositive_fraction": ("share of activations <= 0 per layer", "")}


def hparams_of(config):
    """{name: value} of HPARAMS from a config.json dict (its `resolved` values win over `auto`)."""
    data = config.get("data", {})
    flat = {**config, **config.get("resolved", {}), "data_source": data.get("source", "unknown"),
            "train_examples": data.get("train_examples")}
    values = {}
    for name in HPARAMS:
        value = flat.get(name)
        if isinstance(value, dict):  # resolved optimizer: {"name": "adam", its settings...}
            value = value.get("name", str(value))
        values[name] = NONE if value is None else value
    return values


def hparams_config_pb():
    """The experiment's columns and metrics as a Summary proto; every run writes the same
    (TensorBoard takes one). Its HParams table shows five columns until more are ticked: those
    marked `differs` first, so COMPARED are the ones on screen."""
    summary = hp.hparams_config_pb(
        hparams=[hp.HParam(name) for name in HPARAMS],
        metrics=[hp.Metric(TEST_TAG.format(metric=metric), display_name=label)
                 for metric, label in METRICS])
    content = summary.value[0].metadata.plugin_data
    data = plugin_data_pb2.HParamsPluginData.FromString(content.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in COMPARED
    content.content = data.SerializeToString()
    return summary


def config_markdown(config):
    """A markdown table of every setting of config.json (nested groups flattened), for the Text
    dashboard; the per-run data statistics and versions are left to config.json."""
    rows = []
    for key, value in config.items():
        if key in ("data", "versions"):
            continue
        if isinstance(value, dict):
            rows += [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            rows.append((key, value))
    body = "\n".join(f"| {key} | {_cell(value)} |" for key, value in rows)
    return f"| setting | value |\n|---|---|\n{body}\n"


def _cell(value):
    text = "" if value is None else str(value)
    return text.replace("|", "\\|") or "–"


def custom_scalars_layout(layer_tags, stats=STATS, gradients=True):
    """The Custom Scalars layout: a category per statistic with one chart per logged layer (all
    runs of a root overlay in it), the gradient's std per layer, then the loss and accuracy
    curves."""
    categories = []
    for stat in stats:
        title, target = STAT_CATEGORIES.get(stat, (f"activation {stat} per layer", ""))
        charts = [layout_pb2.Chart(
            title=f"{layer} {stat}" + (f" ({target})" if target else ""),
            multiline=layout_pb2.MultilineChartContent(
                tag=[_exactly(STAT_TAG.format(layer=layer, stat=stat))]))
            for layer in layer_tags]
        categories.append(layout_pb2.Category(title=title, chart=charts))
    if gradients:
        # The backward signal beside the forward one: vanishing and exploding show per layer.
        categories.append(layout_pb2.Category(title="gradient std per layer (the backward signal)", chart=[
            layout_pb2.Chart(title=f"{layer} gradient std", multiline=layout_pb2.MultilineChartContent(
                tag=[_exactly(GRADIENT_STAT_TAG.format(layer=layer, stat="std"))]))
            for layer in layer_tags]))
    metrics = []
    for metric in ("accuracy", "loss"):
        # The test-subset curve and the full test set's points on one chart.
        metrics.append(layout_pb2.Chart(
            title=f"test {metric} (line: first test images; full test set at epoch ends)",
            multiline=layout_pb2.MultilineChartContent(tag=[
                _exactly(TEST_SUBSET_TAG.format(metric=metric)),
                _exactly(TEST_TAG.format(metric=metric))])))
        metrics.append(layout_pb2.Chart(
            title=f"train {metric} (running mean over the epoch)",
            multiline=layout_pb2.MultilineChartContent(tag=[
                _exactly(TRAIN_TAG.format(metric=metric))])))
    categories.append(layout_pb2.Category(title="loss and accuracy", chart=metrics))
    return layout_pb2.Layout(category=categories)


def _exactly(tag):
    return f"^{re.escape(tag)}$"


def log_run_overview(run_dir, layer_tags, gradients=True):
    """Write the run's HParams (from its config.json), config text and Custom Scalars layout at
    step 0 to the default summary writer. Call it for a new run only."""
    config = json.loads((Path(run_dir) / CONFIG_FILE).read_text())
    tf.summary.experimental.write_raw_pb(hparams_config_pb().SerializeToString(), step=0)
    hp.hparams(hparams_of(config), trial_id=Path(run_dir).name)
    tf.summary.text(CONFIG_TEXT_TAG, config_markdown(config), step=0)
    layout = custom_scalar_summary.pb(custom_scalars_layout(layer_tags, gradients=gradients))
    tf.summary.experimental.write_raw_pb(layout.SerializeToString(), step=0)

"""The Activations dashboard's TensorBoard backend: JSON routes over the runs' activation
histograms and statistics, read through TensorBoard's data provider, and the static frontend.

It reads only what runs already log (see avh.tags) and never writes anything.
"""
import functools
import math
import mimetypes
import os

import numpy as np
from werkzeug import wrappers

from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from tensorboard.util import tb_logging

from avh import palette
from avh.dashboard import runs as run_info
from avh.tags import METRICS_FILE, STATS

PLUGIN_NAME = "activations"
HISTOGRAMS = "histograms"  # the plugin names the data was written under
SCALARS = "scalars"
STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
# Everything stored: TensorBoard already keeps a bounded sample per tag (500 histograms,
# 1000 scalars by default), so no second downsampling here.
ALL_SAMPLES = 1_000_000
MAX_NAME_CHARS = 1024
MAX_RUNS_PER_REQUEST = 5000

logger = tb_logging.get_logger()


class BadRequest(ValueError):
    """A query parameter the routes cannot answer: a 400 with this message."""


def json_route(handler):
    """A route that answers JSON, 400 for bad parameters, and a JSON error (not a traceback page)
    if the data cannot be read."""

    @wrappers.Request.application
    @functools.wraps(handler)
    def route(self, request):
        try:
            return http_util.Respond(request, handler(self, request), "application/json")
        except BadRequest as err:
            return http_util.Respond(request, {"error": str(err)}, "application/json", code=400)
        except errors.PublicError as err:
            return http_util.Respond(request, {"error": str(err)}, "application/json",
                                     code=err.http_code)
        except Exception as err:  # the dashboard shows the message; TensorBoard keeps serving
            logger.exception("activations dashboard: %s failed", request.path)
            return http_util.Respond(request, {"error": f"cannot read the runs: {type(err).__name__}"},
                                     "application/json", code=500)

    return route


class ActivationsPlugin(base_plugin.TBPlugin):
    """Overlays the runs' activation distributions of a layer, and their (mean, std) paths."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context):
        self._data = context.data_provider
        self._configs = run_info.ConfigCache(context.logdir)

    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_static,
            "/index.html": self._serve_static,
            "/static/*": self._serve_static,
            "/runs": self.runs_route,
            "/distribution": self.distribution_route,
            "/trajectory": self.trajectory_route,
        }

    def is_active(self):
        return False  # shown when histograms exist: data_plugin_names says so

    def data_plugin_names(self):
        return (HISTOGRAMS,)

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Activations")

    # --- static frontend ---------------------------------------------------------------------

    @wrappers.Request.application
    def _serve_static(self, request):
        name = request.path.rsplit("/", 1)[-1]
        # Only files that are in static/, by name: no path from the request reaches open().
        if name not in _static_files():
            return http_util.Respond(request, "Not found", "text/plain", code=404)
        with open(os.path.join(STATIC_DIR, name), "rb") as f:
            body = f.read()
        kind = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}.get(
            os.path.splitext(name)[1]) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        return http_util.Respond(request, body, kind + "; charset=utf-8")

    # --- JSON routes -------------------------------------------------------------------------

    @json_route
    def runs_route(self, request):
        """All runs, with their layers, last step, activation and seed group; runs without
        activation tags are listed with no layers (the page says "no activation data")."""
        ctx, eid = _context(request)
        histograms = self._data.list_tensors(ctx, experiment_id=eid, plugin_name=HISTOGRAMS)
        scalars = self._data.list_scalars(ctx, experiment_id=eid, plugin_name=SCALARS)
        names = {run.run_name for run in self._data.list_runs(ctx, experiment_id=eid)}
        names |= set(histograms) | set(scalars)
        result, all_layers = [], set()
        for name in sorted(names):
            layers, last_step = set(), None
            for tag, series in histograms.get(name, {}).items():
                layer = run_info.layer_of_histogram_tag(tag)
                if layer:
                    layers.add(layer)
                    last_step = series.max_step if last_step is None else max(last_step, series.max_step)
            stat_layers = {tag[len(run_info.STAT_PREFIX):].rsplit("/", 1)[0]
                           for tag in scalars.get(name, {}) if tag.startswith(run_info.STAT_PREFIX)}
            all_layers |= layers
            config = self._configs.config(name) or {}
            activation = config.get("activation") if isinstance(config.get("activation"), str) else None
            group, seed = run_info.seed_group(name)
            activation = activation or run_info.guess_activation(name)
            result.append({
                "run": name,
                "layers": sorted(layers, key=run_info.layer_order),
                "stat_layers": sorted(stat_layers, key=run_info.layer_order),
                "last_step": last_step,
                "activation": activation,
                "activation_from": "config" if isinstance(config.get("activation"), str) else "name",
                "colour": palette.colour(activation, key=group),
                "dataset": config.get("dataset") if isinstance(config.get("dataset"), str) else None,
                "group": group,
                "seed": seed,
                "finished": self._finished(name),
            })
        return {"runs": result, "layers": sorted(all_layers, key=run_info.layer_order)}

    @json_route
    def distribution_route(self, request):
        """One layer's histogram at one step for the requested runs (all runs if none named):
        `?layer=3_conv3&step=last&run=selu&run=relu`. `step=N` gives each run its last histogram
        at or before N; `steps` lists every step any requested run has, for the step slider."""
        layer = _layer_param(request)
        step = _step_param(request)
        runs = _runs_param(request)
        ctx, eid = _context(request)
        tag = run_info.HISTOGRAM_PREFIX + layer
        found = self._data.read_tensors(
            ctx, experiment_id=eid, plugin_name=HISTOGRAMS, downsample=ALL_SAMPLES,
            run_tag_filter=provider.RunTagFilter(runs=runs, tags=[tag]))
        stats = self._read_stats(ctx, eid, layer, runs)
        all_steps, result, missing = set(), [], []
        for run in sorted(found) if runs is None else runs:
            series = found.get(run, {}).get(tag)
            if not series:
                missing.append({"run": run, "reason": "no activation data for this layer"})
                continue
            all_steps.update(datum.step for datum in series)
            datum = _datum_at(series, step)
            if datum is None:
                missing.append({"run": run, "reason": f"no histogram at or before step {step}"})
                continue
            buckets = _buckets(datum.numpy)
            if buckets is None:
                missing.append({"run": run, "reason": "histogram in an unknown format"})
                continue
            entry = {"run": run, "step": datum.step, "buckets": buckets}
            entry.update(self._stats_at(stats.get(run, {}), layer, datum.step, buckets))
            result.append(entry)
        return {"layer": layer, "step": "last" if step is None else step,
                "steps": sorted(all_steps), "runs": result, "missing": missing}

    @json_route
    def trajectory_route(self, request):
        """Each requested run's (step, mean, std) over training for one layer:
        `?layer=3_conv3&run=selu`; all runs if none named."""
        layer = _layer_param(request)
        runs = _runs_param(request)
        ctx, eid = _context(request)
        stats = self._read_stats(ctx, eid, layer, runs)
        mean_tag, std_tag = run_info.stat_tag(layer, "mean"), run_info.stat_tag(layer, "std")
        result, missing = [], []
        for run in sorted(stats) if runs is None else runs:
            tags = stats.get(run, {})
            means = {d.step: d.value for d in tags.get(mean_tag, [])}
            stds = {d.step: d.value for d in tags.get(std_tag, [])}
            points = [[s, _finite(means[s]), _finite(stds[s])] for s in sorted(means) if s in stds]
            if points:
                result.append({"run": run, "points": points})
            else:
                missing.append({"run": run, "reason": "no mean/std statistics for this layer"})
        return {"layer": layer, "runs": result, "missing": missing}

    # --- helpers -----------------------------------------------------------------------------

    def _read_stats(self, ctx, eid, layer, runs):
        tags = [run_info.stat_tag(layer, stat) for stat in STATS]
        return self._data.read_scalars(
            ctx, experiment_id=eid, plugin_name=SCALARS, downsample=ALL_SAMPLES,
            run_tag_filter=provider.RunTagFilter(runs=runs, tags=tags))

    @staticmethod
    def _stats_at(run_stats, layer, step, buckets):
        """The logged mean/std/non-positive fraction at `step`; where a run (an older version,
        another callback) did not log them, estimates from the histogram's bucket centres."""
        logged = {}
        for stat in STATS:
            for datum in run_stats.get(run_info.stat_tag(layer, stat), []):
                if datum.step == step:
                    logged[stat] = _finite(datum.value)
        if "mean" in logged and "std" in logged:
            return {**logged, "stats_from": "logged"}
        edges = np.array(buckets, dtype=np.float64)
        centres, counts = (edges[:, 0] + edges[:, 1]) / 2, edges[:, 2]
        total = counts.sum()
        if total <= 0:
            return {"mean": None, "std": None, "stats_from": "none"}
        mean = float((centres * counts).sum() / total)
        std = float(math.sqrt(max(((centres - mean) ** 2 * counts).sum() / total, 0.0)))
        return {"mean": _finite(mean), "std": _finite(std), "stats_from": "histogram"}

    def _finished(self, run):
        if not self._configs.logdir or "://" in self._configs.logdir:
            return None
        return os.path.exists(os.path.join(self._configs.logdir, "" if run == "." else run,
                                           METRICS_FILE))


@functools.lru_cache(maxsize=1)
def _static_files():
    return frozenset(os.listdir(STATIC_DIR))


def _context(request):
    return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)


def _layer_param(request):
    layers = request.args.getlist("layer")
    if len(layers) != 1 or not layers[0]:
        raise BadRequest("give exactly one layer, e.g. ?layer=3_conv3")
    layer = layers[0]
    if len(layer) > MAX_NAME_CHARS or not layer.isprintable():
        raise BadRequest(f"not a layer name: {layer[:80]!r}")
    return layer


def _step_param(request):
    """None for the last step (the default), else a non-negative int."""
    value = request.args.get("step", "last")
    if value == "last":
        return None
    try:
        step = int(value)
    except ValueError:
        raise BadRequest(f"step must be 'last' or a non-negative integer; received {value[:40]!r}") from None
    if not 0 <= step < 2 ** 63:
        raise BadRequest(f"step must be 'last' or a non-negative integer; received {step}")
    return step


def _runs_param(request):
    """The `run` parameters (repeated) in order without repeats, or None for all runs."""
    runs = request.args.getlist("run")
    if not runs:
        return None
    if len(runs) > MAX_RUNS_PER_REQUEST:
        raise BadRequest(f"at most {MAX_RUNS_PER_REQUEST} runs a request; received {len(runs)}")
    for run in runs:
        if not run or len(run) > MAX_NAME_CHARS or not run.isprintable():
            raise BadRequest(f"not a run name: {run[:80]!r}")
    return list(dict.fromkeys(runs))


def _datum_at(series, step):
    """The last datum at or before `step` (series are sorted by step); the last one for None."""
    if step is None:
        return series[-1]
    best = None
    for datum in series:
        if datum.step > step:
            break
        best = datum
    return best


def _buckets(array):
    """A histogram tensor as [[left, right, count], ...], or None if it is not k x 3 (any k)."""
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0 or array.dtype.kind not in "fiu":
        return None
    return [[_finite(v) for v in row] for row in array.astype(np.float64).tolist()]


def _finite(value):
    value = float(value)
    return value if math.isfinite(value) else None

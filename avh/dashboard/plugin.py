"""The Activations dashboard's TensorBoard backend: JSON routes over the runs' activation and
gradient histograms and statistics, read through TensorBoard's data provider (and kept in a
SeriesCache between requests), and the static frontend.

Each route parses its query and an `_impl` answers (tests call the `_impl`s without a server).
It reads only what runs already log (see avh.tags) and never writes anything.
"""
import functools
import json
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
from avh.dashboard.cache import READ_AHEAD_IDLE_SECONDS, Query, SeriesCache
from avh.dashboard.series import decode_histogram, finite
from avh.tags import METRICS_FILE

PLUGIN_NAME = "activations"
HISTOGRAMS = "histograms"  # the plugin names the data was written under
SCALARS = "scalars"
STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
MAX_NAME_CHARS = 1024
MAX_RUNS_PER_REQUEST = 5000
MAX_LAYERS_PER_REQUEST = 1000
DEFAULT_RELOAD_INTERVAL = 5.0  # seconds: TensorBoard's own default for --reload_interval

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
            # Our own encoding: the answers hold no NaN (None instead), so TensorBoard's
            # json_util.Cleanse, which copies every list of a 300 kB answer first, is not needed.
            body = json.dumps(handler(self, request), separators=(",", ":"), allow_nan=False)
            return http_util.Respond(request, body, "application/json")
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
    """Overlays the runs' activation (or gradient) distributions of a layer, their (mean, std)
    paths, and each run's forward and backward std by depth."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context, read_ahead_idle=READ_AHEAD_IDLE_SECONDS):
        """`read_ahead_idle`: how long without a request before finished runs' series are read
        ahead in the background (None: never; see avh.dashboard.cache)."""
        self._data = context.data_provider
        self._flags = getattr(context, "flags", None)
        self._configs = run_info.ConfigCache(context.logdir)
        self._cache = SeriesCache(self._data, settled=lambda run: bool(self._finished(run)),
                                  read_ahead_idle=read_ahead_idle)
        self._layers_seen = frozenset()  # the layers /runs found last time

    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_static,
            "/index.html": self._serve_static,
            "/static/*": self._serve_static,
            "/settings": self.settings_route,
            "/runs": self.runs_route,
            "/distribution": self.distribution_route,
            "/trajectory": self.trajectory_route,
            "/depth": self.depth_route,
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

    # --- JSON routes: parse the query, the _impl answers -------------------------------------

    @json_route
    def settings_route(self, request):
        return self.settings_impl()

    @json_route
    def runs_route(self, request):
        return self.runs_impl(*_context(request))

    @json_route
    def distribution_route(self, request):
        return self.distribution_impl(*_context(request), layer=_layer_param(request),
                                      step=_step_param(request), runs=_runs_param(request),
                                      kind=_kind_param(request))

    @json_route
    def trajectory_route(self, request):
        return self.trajectory_impl(*_context(request), layer=_layer_param(request),
                                    runs=_runs_param(request))

    @json_route
    def depth_route(self, request):
        return self.depth_impl(*_context(request), step=_step_param(request),
                               runs=_runs_param(request), layers=_layers_param(request))

    # --- answers -----------------------------------------------------------------------------

    def settings_impl(self):
        """How often the page refreshes: TensorBoard's `--reload_interval` (seconds; 0 means
        it loads the logdir once, so there is nothing to follow), or its default without flags."""
        interval = getattr(self._flags, "reload_interval", None)
        if isinstance(interval, (int, float)) and not isinstance(interval, bool) and \
                math.isfinite(interval) and interval >= 0:
            return {"reload_interval": float(interval), "reload_interval_from": "flags"}
        return {"reload_interval": DEFAULT_RELOAD_INTERVAL, "reload_interval_from": "default"}

    def runs_impl(self, ctx, eid):
        """All runs, with their layers (activation and gradient histograms), last step and the
        wall time of their newest histogram, activation and seed group; runs without activation
        tags are listed with no layers (the page says "no activation data")."""
        def list_stats(layers):
            # The runs' statistics listed by name (not every scalar of every run): the layers
            # whose mean and std the trajectories can draw.
            return (self._data.list_scalars, dict(
                ctx=ctx, experiment_id=eid, plugin_name=SCALARS, run_tag_filter=provider.RunTagFilter(
                    runs=None, tags=[run_info.stat_tag(layer, "std") for layer in sorted(layers)])))

        # The layers of the last answer stand in for this one's, so that the statistics are
        # listed at the same time as the runs and histograms; new layers are listed after.
        guessed = self._layers_seen
        listed_runs, histograms, *scalars = self._cache.at_once([
            (self._data.list_runs, dict(ctx=ctx, experiment_id=eid)),
            (self._data.list_tensors, dict(ctx=ctx, experiment_id=eid, plugin_name=HISTOGRAMS)),
            *([list_stats(guessed)] if guessed else [])])
        scalars = scalars[0] if scalars else {}
        names = {run.run_name for run in listed_runs} | set(histograms)
        found = {}  # run -> (layers, gradient layers, last step, last wall time)
        all_layers = set()
        for name in names:
            layers, gradient_layers, last_step, last_wall_time = set(), set(), None, None
            for tag, series in histograms.get(name, {}).items():
                layer = run_info.layer_of_histogram_tag(tag)
                gradient_layer = run_info.layer_of_gradient_tag(tag)
                if layer:
                    layers.add(layer)
                    last_step = _max(last_step, series.max_step)
                elif gradient_layer:
                    gradient_layers.add(gradient_layer)
                else:
                    continue
                last_wall_time = _max(last_wall_time, series.max_wall_time)
            all_layers |= layers
            found[name] = (layers, gradient_layers, last_step, last_wall_time)
        if all_layers - guessed:
            function, kwargs = list_stats(all_layers - guessed)
            for run, by_tag in function(**kwargs).items():
                scalars.setdefault(run, {}).update(by_tag)
        self._layers_seen = frozenset(all_layers)
        result = []
        for name in sorted(names):
            layers, gradient_layers, last_step, last_wall_time = found[name]
            stat_layers = {run_info.layer_of_stat_tag(tag, "std") for tag in scalars.get(name, {})}
            config = self._configs.config(name) or {}
            activation = config.get("activation") if isinstance(config.get("activation"), str) else None
            group, seed = run_info.seed_group(name)
            activation = activation or run_info.guess_activation(name)
            result.append({
                "run": name,
                "layers": sorted(layers, key=run_info.layer_order),
                "stat_layers": sorted(stat_layers - {None}, key=run_info.layer_order),
                "gradient_layers": sorted(gradient_layers, key=run_info.layer_order),
                "last_step": last_step,
                "last_wall_time": last_wall_time,
                "activation": activation,
                "activation_from": "config" if isinstance(config.get("activation"), str) else "name",
                "colour": palette.colour(activation, key=group),
                "dataset": config.get("dataset") if isinstance(config.get("dataset"), str) else None,
                "group": group,
                "seed": seed,
                "finished": self._finished(name),
            })
        return {"runs": result, "layers": sorted(all_layers, key=run_info.layer_order)}

    def distribution_impl(self, ctx, eid, layer, step=None, runs=None, kind="activations"):
        """One layer's histogram (`kind` activations or gradients) at one step for the requested
        runs (all runs if None): each run's last histogram at or before `step` (None: its last),
        in the wire format of avh.dashboard.series, with the statistics logged beside it;
        `steps` lists every step any requested run has, for the step slider."""
        spec = run_info.KINDS[kind]
        tag = spec["histogram"].format(layer=layer)
        stat_tags = [run_info.stat_tag(layer, stat, kind) for stat in spec["stats"]]
        std_tag = run_info.stat_tag(layer, "std", kind)
        # For the last step (what a live page asks at every refresh) only each series' newest
        # datum, but the std in full: a run whose histograms were read newest-only takes its
        # steps (for the slider) from it.
        last = step is None
        (found, newest_only), (stats, _), (std_stats, _) = self._cache.read(
            ctx, eid, Query("tensors", HISTOGRAMS, runs, [tag], last_only=last),
            Query("scalars", SCALARS, runs, [t for t in stat_tags if t != std_tag], last_only=last),
            Query("scalars", SCALARS, runs, [std_tag]))
        for run, by_tag in std_stats.items():
            stats.setdefault(run, {}).update(by_tag)
        unstepped = sorted(run for run, _ in newest_only if std_tag not in stats.get(run, {}))
        if unstepped:  # another writer's run, no statistics to take its steps from: read it all
            (more, _), = self._cache.read(ctx, eid, Query("tensors", HISTOGRAMS, unstepped, [tag]))
            for run in unstepped:
                found[run].update(more.get(run, {}))
                newest_only.discard((run, tag))
        all_steps, result, missing = set(), [], []
        for run in sorted(found) if runs is None else runs:
            series = found.get(run, {}).get(tag)
            if series is None or not series.steps:
                missing.append({"run": run, "reason": f"no {_kind_noun(kind)} data for this layer"})
                continue
            all_steps.update(series.steps)
            if (run, tag) in newest_only:
                all_steps.update(stats[run][std_tag].steps)
            i = series.index_at(step)
            if i is None:
                missing.append({"run": run, "reason": f"no histogram at or before step {step}"})
                continue
            histogram = series.encoded(i)
            if histogram is None:
                missing.append({"run": run, "reason": "histogram in an unknown format"})
                continue
            entry = {"run": run, "step": series.steps[i], "histogram": histogram}
            entry.update(_stats_at(stats.get(run, {}), kind, layer, series.steps[i], histogram))
            result.append(entry)
        return {"layer": layer, "kind": kind, "step": "last" if step is None else step,
                "steps": sorted(all_steps), "runs": result, "missing": missing}

    def trajectory_impl(self, ctx, eid, layer, runs=None):
        """Each requested run's (step, mean, std) over training for one layer; all runs if None."""
        mean_tag, std_tag = run_info.stat_tag(layer, "mean"), run_info.stat_tag(layer, "std")
        (stats, _), = self._cache.read(ctx, eid, Query("scalars", SCALARS, runs, [mean_tag, std_tag]))
        result, missing = [], []
        for run in sorted(stats) if runs is None else runs:
            tags = stats.get(run, {})
            means, stds = tags.get(mean_tag), tags.get(std_tag)
            points = means.joined(stds) if means is not None and stds is not None else []
            if points:
                result.append({"run": run, "points": points})
            else:
                missing.append({"run": run, "reason": "no mean/std statistics for this layer"})
        return {"layer": layer, "runs": result, "missing": missing}

    def depth_impl(self, ctx, eid, step=None, runs=None, layers=None):
        """The signal by depth: for each requested run (all if None), the forward std
        (`activation_stats/<layer>/std`) and the backward std (`gradient_stats/<layer>/std`) of
        every layer (of `layers`, or all that have them; in layer order) at one step: the run's last step at or
        before `step` (None: its last) that has any of them. `forward`/`backward` follow
        `layers` (null where a layer has no value at that step); `backward` is null for a run
        without gradient statistics."""
        stat = run_info.DEPTH_STAT
        if layers is None:
            def wanted(tag):
                return (run_info.layer_of_stat_tag(tag, stat) or
                        run_info.layer_of_stat_tag(tag, stat, "gradients")) is not None
            query = Query("scalars", SCALARS, runs, None, last_only=step is None, want=wanted)
        else:
            tags = [run_info.stat_tag(layer, stat, kind) for layer in layers for kind in run_info.KINDS]
            query = Query("scalars", SCALARS, runs, tags, last_only=step is None)
        (found, _), = self._cache.read(ctx, eid, query)
        per_run, all_layers = {}, set()
        for run, by_tag in found.items():
            forward, backward = {}, {}
            for tag, series in by_tag.items():
                layer = run_info.layer_of_stat_tag(tag, stat)
                if layer is not None:
                    forward[layer] = series
                    continue
                layer = run_info.layer_of_stat_tag(tag, stat, "gradients")
                if layer is not None:
                    backward[layer] = series
            if forward or backward:
                per_run[run] = (forward, backward)
                all_layers |= set(forward) | set(backward)
        ordered = sorted(all_layers, key=run_info.layer_order)
        result, missing = [], []
        for run in sorted(per_run) if runs is None else runs:
            if run not in per_run:
                missing.append({"run": run, "reason": f"no {stat} statistics of its layers"})
                continue
            forward, backward = per_run[run]
            steps = [series.last_step_at_or_before(step) for series in (*forward.values(), *backward.values())]
            steps = [s for s in steps if s is not None]
            if not steps:
                missing.append({"run": run, "reason": f"no statistics at or before step {step}"})
                continue
            at = max(steps)
            result.append({
                "run": run, "step": at,
                "forward": [forward[layer].at(at) if layer in forward else None for layer in ordered],
                "backward": [backward[layer].at(at) if layer in backward else None for layer in ordered]
                if backward else None,
            })
        return {"step": "last" if step is None else step, "layers": ordered, "runs": result,
                "missing": missing}

    # --- helpers -----------------------------------------------------------------------------

    def _finished(self, run):
        if not self._configs.logdir or "://" in self._configs.logdir:
            return None
        return os.path.exists(os.path.join(self._configs.logdir, "" if run == "." else run,
                                           METRICS_FILE))


def _stats_at(run_stats, kind, layer, step, histogram):
    """The statistics logged beside the histogram at `step`; where a run (an older version,
    another callback) did not log its mean and std, estimates from the histogram's bucket
    centres (mean, std, rms) instead."""
    logged = {}
    for stat in run_info.KINDS[kind]["stats"]:
        series = run_stats.get(run_info.stat_tag(layer, stat, kind))
        value = series.at(step) if series is not None else None
        if value is not None:
            logged[stat] = value
    needed = ("mean", "std") if kind == "activations" else ("std",)
    if all(stat in logged for stat in needed):
        return {**logged, "stats_from": "logged"}
    buckets = decode_histogram(histogram)
    centres, counts = (buckets[:, 0] + buckets[:, 1]) / 2, buckets[:, 2]
    total = np.nansum(counts)
    if not total > 0 or not np.all(np.isfinite(centres)):
        return {"mean": None, "std": None, "stats_from": "none"}
    mean = float(np.nansum(centres * counts) / total)
    std = float(math.sqrt(max(np.nansum((centres - mean) ** 2 * counts) / total, 0.0)))
    estimate = {"mean": finite(mean), "std": finite(std), "stats_from": "histogram"}
    if kind == "gradients":
        estimate["rms"] = finite(math.sqrt(mean * mean + std * std))
    return estimate


def _kind_noun(kind):
    return "activation" if kind == "activations" else "gradient"


def _max(a, b):
    if b is None:
        return a
    return b if a is None else max(a, b)


@functools.lru_cache(maxsize=1)
def _static_files():
    return frozenset(os.listdir(STATIC_DIR))


def _context(request):
    return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)


def _layer_param(request):
    layers = request.args.getlist("layer")
    if len(layers) != 1 or not layers[0]:
        raise BadRequest("give exactly one layer, e.g. ?layer=3_conv3")
    return _check_layer(layers[0])


def _check_layer(layer):
    if not layer or len(layer) > MAX_NAME_CHARS or not layer.isprintable():
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


def _layers_param(request):
    """The `layer` parameters (repeated) in order without repeats, or None for every layer."""
    layers = request.args.getlist("layer")
    if not layers:
        return None
    if len(layers) > MAX_LAYERS_PER_REQUEST:
        raise BadRequest(f"at most {MAX_LAYERS_PER_REQUEST} layers a request; received {len(layers)}")
    for layer in layers:
        _check_layer(layer)
    return list(dict.fromkeys(layers))


def _kind_param(request):
    kind = request.args.get("kind", "activations")
    if kind not in run_info.KINDS:
        raise BadRequest(f"kind must be one of {', '.join(run_info.KINDS)}; received {kind[:40]!r}")
    return kind

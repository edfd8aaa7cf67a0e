"""The benchmark's results: each kind against the plain fit of the same repeat (medians with
bootstrap intervals), the whole-process pairs, the figures at each cadence, and the Markdown
report. It reads what the measured processes wrote; it measures nothing itself."""
import math
import os
import platform
from importlib.metadata import version
from pathlib import Path

from avh_app.bench import stats
from avh_app.bench.plan import KINDS, SHAPES
from avh_app.bench.processes import GB
from avh_app.cli import use_onednn

SHAPE_NAMES = {"mnist": "MNIST, the app's CNN", "cifar10": "CIFAR-10, the app's CNN",
               "resnet50v2": "ResNet50V2, 32x32, batch 32",
               "efficientnetb0": "EfficientNetB0, 32x32, batch 32",
               "densenet121": "DenseNet121, 32x32, batch 32"}
# The comparisons the report states, where both kinds ran: (kind, against).
PAIRS = (("callback", "handwritten"), ("callback", "keras-tensorboard"), ("app", "plain"))


def summarise(runs):
    """{"kinds": {shape: {kind: summary}}, "pairs": ..., "whole": ..., "cadence": ...}."""
    by = {}
    for run in runs:
        by.setdefault(run.section, {}).setdefault(run.shape, {}).setdefault(run.kind, {})[run.repeat] = run.result
    kinds, pairs = {}, {}
    for shape, per_kind in by.get("kinds", {}).items():
        plain = per_kind.get("plain", {})
        kinds[shape] = {}
        for kind, repeats in per_kind.items():
            paired = [r for r in repeats if r in plain]
            results = list(repeats.values())
            kinds[shape][kind] = {
                "repeats": len(results),
                "examples_per_sec": stats.median_interval([r["examples_per_sec"] for r in results]),
                "ratio": _paired_ratio(repeats, plain, paired, "examples_per_sec"),
                "cpu_ratio": _paired_ratio(repeats, plain, paired, "cpu_seconds_per_step"),
                "cpu_ms_per_step": stats.median_interval(
                    [1000 * r["cpu_seconds_per_step"] for r in results]),
                "first_step_s": stats.median_interval([r["seconds_to_first_step"] for r in results]),
                "step_ratio": _paired_ratio(repeats, plain, paired, "median_step_ms"),
                "thread_share": _mean_dicts([r.get("training_thread_share") for r in results]),
                "peak_rss_gb": max(r["peak_rss"] for r in results) / GB,
                "event_ms": _mean_dicts([r.get("event_ms") for r in results]),
                "figure_ms": _mean([r.get("figure_ms") for r in results]),
                "logged_layers": results[0].get("logged_layers"),
                "batch_size": results[0].get("batch_size", 64),
                "figures": results[0].get("figures"),
            }
        for kind, against in PAIRS:
            a, b = per_kind.get(kind, {}), per_kind.get(against, {})
            common = sorted(set(a) & set(b) & set(plain) if against != "plain" else set(a) & set(b))
            if common:
                pairs[shape, kind, against] = (stats.median_interval(
                    [a[r]["examples_per_sec"] / b[r]["examples_per_sec"] for r in common]), len(common))
    whole = by.get("whole", {}).get("cifar10-subset", {})
    summary = {"kinds": kinds, "pairs": pairs, "cadence": {}}
    if whole:
        on, off = list(whole.get("app", {}).values()), list(whole.get("app-off", {}).values())
        summary["whole"] = {
            "on_s": [r["wall_seconds"] for r in on], "off_s": [r["wall_seconds"] for r in off],
            "overhead": min(r["wall_seconds"] for r in on) / min(r["wall_seconds"] for r in off) - 1,
            "first_step_on_s": min(r["seconds_to_first_step"] for r in on),
            "first_step_off_s": min(r["seconds_to_first_step"] for r in off),
            "figures": on[0].get("figures"), "peak_rss_gb": max(r["peak_rss"] for r in on) / GB}
    for kind, repeats in by.get("cadence", {}).get("mnist", {}).items():
        summary["cadence"][int(kind.split("-")[1])] = repeats[0].get("figures")
    return summary


def _paired_ratio(repeats, plain, paired, key):
    """stats.median_interval of a kind's `key` over the plain fit's, repeat by repeat, over the
    repeats where both have it (NaNs when none has)."""
    return stats.median_interval([repeats[r][key] / plain[r][key] for r in paired
                                  if repeats[r].get(key) is not None
                                  and plain[r].get(key) is not None])


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _mean_dicts(dicts):
    dicts = [d for d in dicts if d]
    return {k: _mean([d[k] for d in dicts]) for k in dicts[0]} if dicts else None


def machine():
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo()
                  if line.startswith("model name")), platform.processor() or platform.machine())
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            **{package: version(package) for package in ("tensorflow", "keras", "matplotlib")},
            "onednn": _onednn()}


def _onednn():
    """The measured processes' oneDNN setting (avh_app.cli.use_onednn): the same TensorFlow runs
    other kernels on another CPU."""
    environ = dict(os.environ)
    use_onednn(environ)
    value = environ.get("TF_ENABLE_ONEDNN_OPTS")
    return "TensorFlow's default" if value is None else f"TF_ENABLE_ONEDNN_OPTS={value}"


def _cpuinfo():
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _ci(interval, fmt="{:.3f}"):
    median, low, high = interval
    if fmt.format(low) == fmt.format(high):  # no spread at the precision shown
        return fmt.format(median)
    return f"{fmt.format(median)} ({fmt.format(low)}-{fmt.format(high)})"


def report(summary, plan, info):
    """The benchmark's Markdown report."""
    m = info["machine"]
    quick = " (--quick: a smoke test, its numbers mean nothing)" if plan.scale < 1 else ""
    own = [f"{s.name}: {plan.repeats_of(s)}" for s in plan.shapes
           if plan.repeats_of(s) != plan.repeats]
    own = f" ({', '.join(own)})" if own else ""
    lines = [f"## avh benchmark{quick}", "",
             f"{info['date']}; {m['cpu']}, {m['cores']} cores; TensorFlow {m['tensorflow']}, "
             f"Keras {m['keras']}, Python {m['python']}, oneDNN: {m['onednn']}; load average "
             f"{info['load_before']:.2f} before, {info['load_after']:.2f} after; "
             f"{plan.repeats} repeat(s) of every kind{own}, "
             f"interleaved; medians with {stats.CONFIDENCE:.0%} bootstrap intervals", "",
             "| shape | kind | ex/s | ratio to plain | CPU/step ratio | median step ratio "
             "| first step s | peak RSS GB |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for shape in [s.name for s in SHAPES if s.name in summary["kinds"]]:
        for kind, k in summary["kinds"][shape].items():
            lines.append(f"| {SHAPE_NAMES.get(shape, shape)} | {kind} | "
                         f"{k['examples_per_sec'][0]:.0f} | {_ci(k['ratio'])} | {_ci(k['cpu_ratio'])} "
                         f"| {'-' if math.isnan(k['step_ratio'][0]) else _ci(k['step_ratio'])} "
                         f"| {k['first_step_s'][0]:.1f} | {k['peak_rss_gb']:.2f} |")
    lines += ["", "kinds: " + "; ".join(f"**{kind}**: {text}" for kind, text in KINDS.items())]
    if summary["pairs"]:
        lines += ["", "paired, repeat by repeat (ex/s of the first over the second; above 1: the "
                      "first is faster):"]
        for (shape, kind, against), (interval, repeats) in summary["pairs"].items():
            lines.append(f"- {shape}: {kind} / {against} {_ci(interval)}: "
                         f"{_words(stats.verdict(interval, repeats), kind, against)}")
    events = [(shape, k) for shape, per_kind in summary["kinds"].items()
              for kind, k in per_kind.items() if kind == "callback" and k["event_ms"]]
    if events:
        lines += ["", "one summary event of the callback (mean over the run's events):"]
        for shape, k in events:
            figures = f", figures {k['figure_ms']:.0f} ms of CPU on their thread" if k["figure_ms"] else ""
            step_ms = 1000 * k["batch_size"] / k["examples_per_sec"][0]
            lines.append(f"- {shape}: {k['logged_layers']} layers; {k['event_ms']['training_thread']:.0f} "
                         f"ms on the training thread ({k['event_ms']['training_thread'] / (100 * step_ms):.1%} "
                         f"of 100 steps), moments {k['event_ms']['moments']:.0f} ms on their thread"
                         f"{figures}")
    shares = [(shape, kind, k["thread_share"]) for shape, per_kind in summary["kinds"].items()
              for kind, k in per_kind.items() if k["thread_share"]]
    if shares:
        lines += ["", "where the app's training thread goes, besides the steps (each callback's "
                      "share of the timed window, mean over the repeats; the median step ratio "
                      "above: how much slower an ordinary step ran, the other threads' share):"]
        for shape, kind, share in shares:
            parts = [f"{name} {value:.1%}" for name, value in share.items() if value >= 0.0005]
            lines.append(f"- {shape}, {kind}: {sum(share.values()):.1%} in all"
                         + (f": {', '.join(parts)}" if parts else ""))
    if "whole" in summary:
        w = summary["whole"]
        lines += ["", f"whole process, {plan.whole_steps}-step CIFAR-10-subset run, best of "
                      f"{len(w['on_s'])}, alternately: {min(w['on_s']):.1f} s with default "
                      f"summaries, {min(w['off_s']):.1f} s with --summary-every 0: "
                      f"{100 * w['overhead']:+.1f}% (every run: "
                      f"{', '.join(f'{s:.1f}' for s in w['on_s'])} s / "
                      f"{', '.join(f'{s:.1f}' for s in w['off_s'])} s); first step at "
                      f"{w['first_step_on_s']:.1f} s / {w['first_step_off_s']:.1f} s; "
                      f"figures at {_figures(w['figures'])} summary steps; peak RSS "
                      f"{w['peak_rss_gb']:.2f} GB"]
    if summary["cadence"]:
        lines += ["", f"figures at every summary step, MNIST, {plan.cadence_steps} steps: " + "; ".join(
            f"--summary-every {every}: {_figures(figures)}"
            for every, figures in sorted(summary["cadence"].items()))]
    return "\n".join(lines)


def _figures(figures):
    return "?" if not figures else f"{figures[0]} of {figures[1]}"


def _words(verdict, kind, against):
    return {"above": f"{kind} is faster", "below": f"{kind} is slower",
            "within": "no difference resolved",
            "too few": f"fewer than {stats.MIN_REPEATS} repeats: nothing resolved"}[verdict]

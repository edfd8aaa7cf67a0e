"""report.py's page: per data set, a table of the runs (or seed groups, with mean +- sd and the
spread verdict) and the figures, in one self-contained report.html.
"""
import base64
import html
import time

from avh_app import seeds
from avh_app.report.figures import FIGURES, seed_groups
from avh_app.report.runs import differing_settings


def metrics_rows(runs):
    """Table rows (strings): run, activation, dataset, steps, test accuracy, test loss, examples/s."""
    rows = []
    for run in runs:
        m = run.metrics
        if m is None:
            tail = [f"{run.last_step()} (unfinished)", "-", "-", "-"]
        else:
            tail = [str(m.get("steps", "?")), _number(m.get("test_accuracy"), "{:.2%}"),
                    _number(m.get("test_loss"), "{:.4f}"),
                    _number(m.get("examples_per_sec"), "{:.0f}")]
        resolved = run.config.get("resolved", {})
        dropout = run.config.get("dropout")
        rows.append([run.label, run.activation, str(run.config.get("dataset", "?")),
                     str(resolved.get("norm", "?")), str(resolved.get("init", "?")),
                     f"{resolved.get('dropout_kind', '?')} {dropout}" if dropout else "none",
                     *tail])
    return rows


def _number(value, fmt):
    return fmt.format(value) if isinstance(value, (int, float)) else "-"


TABLE_HEADER = ("run", "activation", "dataset", "norm", "init", "dropout", "steps",
                "test accuracy", "test loss", "examples/s")


SEED_TABLE_HEADER = ("group", "activation", "dataset", "seeds", "steps", "test accuracy",
                     "test loss")


def seed_rows(runs):
    """Table rows per seed group: test accuracy and loss as mean +- sd over its finished seeds."""
    rows = []
    for name, members in seed_groups(runs).items():
        finished = [run.metrics for run in members if run.metrics is not None]
        acc = seeds.summary([m.get("test_accuracy") for m in finished])
        loss = seeds.summary([m.get("test_loss") for m in finished])
        steps = sorted({str(m.get("steps", "?")) for m in finished}) or ["unfinished"]
        rows.append([name, members[0].activation, str(members[0].config.get("dataset", "?")),
                     f"{acc[2]} of {len(members)}", "/".join(steps),
                     _mean_sd(acc, "{:.2%}"), _mean_sd(loss, "{:.4f}")])
    return rows


def _mean_sd(stats, fmt):
    mean, sd, n = stats
    if not n:
        return "-"
    return fmt.format(mean) + (f" ± {fmt.format(sd)}" if n > 1 else " (one seed)")


def seed_notes(runs):
    """One sentence per pair of groups: do their test accuracies differ by more than the seeds'
    spread (|mean_a - mean_b| > sd_a + sd_b)? Welch's t-test p value alongside."""
    stats = {name: seeds.summary([r.metrics.get("test_accuracy") for r in members if r.metrics])
             for name, members in seed_groups(runs).items()}
    names = [name for name, (_, _, n) in stats.items() if n > 1]
    notes = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            difference, spread, beyond, p = seeds.compare(stats[a], stats[b])
            verdict = ("differ by more than their seed spread" if beyond else
                       "are within their seed spread: no difference shown")
            notes.append(f"{a} vs {b}: test accuracies {verdict} (|difference| {difference:.2%}, "
                         f"sd sum {spread:.2%}; Welch's t-test p = {p:.2g})")
    return notes


def write_html(root, written, out):
    """report.html: per data set, the metrics table and the PNGs embedded as data URIs (one file
    to send)."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in TABLE_HEADER)
    sections = []
    for dataset, runs, folder in written:
        by_seed = seeds.has_seed_groups([run.label for run in runs])
        if by_seed:  # runs of several seeds: one row per group, mean ± sd, and the verdicts
            table_head = "".join(f"<th>{e(h)}</th>" for h in SEED_TABLE_HEADER)
            body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>\n"
                           for row in seed_rows(runs))
            body += "".join(f"<tr><td colspan={len(SEED_TABLE_HEADER)} class=note>{e(note)}</td></tr>\n"
                            for note in seed_notes(runs))
        else:
            table_head = head
            body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>\n"
                           for row in metrics_rows(runs))
        differ = [d for d in differing_settings(runs) if not (by_seed and d.startswith("seed:"))]
        warning = (f"<p class=warn>These runs differ in more than the activation: "
                   f"{e('; '.join(differ))}.</p>" if differ else "")
        figures = "".join(
            f"<h3>{e(heading)}</h3>\n<img alt=\"{e(name)}\" src=\"data:image/png;base64,"
            f"{base64.b64encode((folder / name).read_bytes()).decode('ascii')}\">\n"
            for name, (_, heading) in FIGURES.items())
        sections.append(f"<h2>{e(dataset)}: {len(runs)} run(s)</h2>\n<table><tr>{table_head}</tr>\n"
                        f"{body}</table>\n{warning}\n{figures}")
    n_runs = sum(len(runs) for _, runs, _ in written)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Activations report: {e(str(root))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.8em; text-align: right; }}
th:nth-child(-n+6), td:nth-child(-n+6) {{ text-align: left; }}
img {{ max-width: 100%; }}
.warn {{ color: #a40; }}
td.note {{ text-align: left; }}
</style></head>
<body>
<h1>Activations report</h1>
<p>{n_runs} run(s) under <code>{e(str(root))}</code>, drawn {e(time.strftime('%Y-%m-%d %H:%M'))}.
Colours: SELU blue, ReLU orange, LeakyReLU green, ELU red, GELU purple.</p>
{"".join(sections)}</body></html>
"""
    (out / "report.html").write_text(page, encoding="utf-8")

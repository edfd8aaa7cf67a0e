"""Draw what the runs under a TensorBoard root did to their activations: PNG figures and one
self-contained HTML page, read from the event files with TensorBoard's own reader.

    python scripts/report.py logs/cifar10-compare-20250101-120000 [-o OUT]

It only reads run folders; it writes nothing outside OUT. The parts are in avh_app/report/.
"""
import argparse
import sys
from pathlib import Path

from avh.events import EVENTS_PREFIX
from avh.tags import CONFIG_FILE
from avh_app import seeds
from avh_app.cli import BAD_INPUT, UsageError, import_tensorflow, usage_error
from avh_app.report.depth import depth_runs, depth_table, plot_depth_sweep, sweep_of
from avh_app.report.figures import FIGURES, write_figures
from avh_app.report.page import seed_notes, write_html
from avh_app.report.runs import by_dataset, differing_settings, find_runs, load_runs


def build_parser():
    p = argparse.ArgumentParser(
        description="Draw per-layer activation statistics, histograms and test curves of the runs "
                    "under LOGROOT (PNG figures and one self-contained report.html).")
    p.add_argument("logroot", metavar="LOGROOT",
                   help="a TensorBoard root: run folders (config.json + events) at any depth")
    p.add_argument("-o", "--out", metavar="OUT", help="output folder (default: LOGROOT/report)")
    p.error = usage_error
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    root = Path(args.logroot)
    out = Path(args.out) if args.out else root / "report"
    try:
        if not root.is_dir():
            raise UsageError(f"{root}: no such folder")
        if not find_runs(root):
            raise UsageError(f"no runs of this app under {root} (folders with {CONFIG_FILE} and "
                             f"an {EVENTS_PREFIX}* file)")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create {out}: {err.strerror or err}")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
    import_tensorflow()  # TensorBoard's event reader loads it: without its start-up chatter
    runs = load_runs(root)
    if not runs:
        print(f"error: no readable runs under {root}", file=sys.stderr)
        return BAD_INPUT
    try:
        if depth_runs(runs):
            plot_depth_sweep(runs, out / "depth.png")
            table = "\n".join(depth_table(runs)) + "\n"
            (out / "depth.md").write_text(table)
            print(table + f"wrote {out / 'depth.png'}, {out / 'depth.md'}")
            runs = [run for run in runs if sweep_of(run.config) is None]
            if not runs:
                return 0
        written = write_figures(by_dataset(runs), out)
        write_html(root, written, out)
    except OSError as err:
        print(f"error: cannot write {err.filename or out}: {err.strerror or err}", file=sys.stderr)
        return BAD_INPUT
    print(f"{len(runs)} run(s): {', '.join(run.label for run in runs)}")
    for dataset, dataset_runs, _ in written:
        data = [note for note in differing_settings(dataset_runs) if note.startswith("data: ")]
        if data:
            print(f"warning: the {dataset} runs did not train on the same data ({data[0][6:]}); "
                  f"their figures and table say so")
        if seeds.has_seed_groups([run.label for run in dataset_runs]):
            print("\n".join(seed_notes(dataset_runs)))
    print(f"wrote {', '.join(str(folder / name) for _, _, folder in written for name in FIGURES)}"
          f", {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""scripts/bench_paired.py's plan and report: the order of the kinds' blocks in one fit, and each
kind against the plain block of its round (the fit itself: avh_app.bench.fits.Turns)."""
import numpy as np

from avh_app.bench import stats
from avh_app.bench.results import _ci, _words

# Callbacks in a plain fit: avh's, with the backward signal too (the probe's labels), and its peers.
KINDS = ("plain", "callback", "callback-gradients", "keras-tensorboard", "handwritten")
PEERS = ("keras-tensorboard", "handwritten")  # what the callback (no labels, as theirs) is paired with


def turns_schedule(rounds, seed):
    """[(kind, round)] for every epoch: round 0 (warming up: traces, step 0) in KINDS' order,
    then `rounds` rounds each in its own random order (seeded), so no kind always follows
    another."""
    rng = np.random.default_rng(seed)
    schedule = [(kind, 0) for kind in KINDS]
    for r in range(1, rounds + 1):
        schedule += [(KINDS[i], r) for i in rng.permutation(len(KINDS))]
    return schedule


def summarise(result):
    """{kind: {"wall": (median, low, high) of plain wall / kind wall (throughput against the
    plain fit), "cpu": ... of kind CPU / plain CPU, "extra_ms": ... of kind wall - plain wall
    (what a block of `every` steps costs more)}} of the kinds in every round, and the pairs
    ({peer: {"wall": ..., "cpu": ...}} of the peer's time over the callback's: above 1 the
    callback costs less; "gradients": callback-gradients' over the callback's, what the backward
    signal adds), over the measured rounds."""
    by_round = {}
    for b in result["blocks"]:
        if b["round"] > 0:
            by_round.setdefault(b["round"], {})[b["kind"]] = b
    rounds = [by_round[r] for r in sorted(by_round)]
    present = [kind for kind in KINDS if all(kind in r for r in rounds)]
    kinds = {}
    for kind in present:
        walls = [r[kind]["wall"] for r in rounds]
        entry = {"block_ms": stats.median_interval([1000 * w for w in walls])}
        if kind != "plain":
            entry.update(
                wall=stats.median_interval([r["plain"]["wall"] / r[kind]["wall"] for r in rounds]),
                cpu=stats.median_interval([r[kind]["cpu"] / r["plain"]["cpu"] for r in rounds]),
                extra_ms=stats.median_interval(
                    [1000 * (r[kind]["wall"] - r["plain"]["wall"]) for r in rounds]))
        kinds[kind] = entry
    pairs = {peer: _paired(rounds, peer, "callback") for peer in PEERS if peer in present}
    if "callback-gradients" in present:  # what the backward signal adds to the callback
        pairs["gradients"] = _paired(rounds, "callback-gradients", "callback")
    return {"rounds": len(rounds), "kinds": kinds, "pairs": pairs}


def _paired(rounds, kind, against):
    """{"wall": ..., "cpu": ...}: (median, low, high) of kind's time over against's, round by round."""
    return {time: stats.median_interval([r[kind][time] / r[against][time] for r in rounds])
            for time in ("wall", "cpu")}


def report(results, info, block):
    m = info["machine"]
    lines = ["## avh callbacks side by side, in one process", "",
             f"{info['date']}; {m['cpu']}, {m['cores']} cores; TensorFlow {m['tensorflow']}, "
             f"Keras {m['keras']}, oneDNN: {m['onednn']}; load average "
             f"{info['load_before']:.2f} before, {info['load_after']:.2f} after; blocks of "
             f"{block} steps, one event of each kind a block; medians over the rounds with "
             f"{stats.CONFIDENCE:.0%} bootstrap intervals",
             "", "| shape | kind | block ms | throughput to plain | CPU to plain | extra ms a block |",
             "|---|---|---:|---:|---:|---:|"]
    verdicts = []
    for shape, result in results.items():
        s = summarise(result)
        for kind, k in s["kinds"].items():
            if kind == "plain":
                lines.append(f"| {shape} ({s['rounds']} rounds) | plain | {_ci(k['block_ms'], '{:.0f}')} "
                             f"| 1 | 1 | 0 |")
                continue
            lines.append(f"| {shape} | {kind} | {_ci(k['block_ms'], '{:.0f}')} | {_ci(k['wall'])} "
                         f"| {_ci(k['cpu'])} | {_ci(k['extra_ms'], '{:.0f}')} |")
        for peer, pair in s["pairs"].items():
            wall, cpu = pair["wall"], pair["cpu"]
            if peer == "gradients":
                verdicts.append(f"- {shape}: the backward signal, callback-gradients / callback: "
                                f"block time {_ci(wall)}, CPU {_ci(cpu)}")
                continue
            verdicts.append(f"- {shape}: callback / {peer} {_ci(wall)}: "
                            f"{_words(stats.verdict(wall, s['rounds']), 'callback', peer)}; CPU "
                            f"{_ci(cpu)}: {_cpu_words(stats.verdict(cpu, s['rounds']))}")
        verdicts.append(f"- {shape}: the callback's events {result['callback_events']}, figures "
                        f"drawn at {result['figures_drawn']}, skipped at {result['figures_skipped']}")
    lines += ["", "paired, round by round (the peer's block time, and CPU time, over the callback's: "
                  "above 1 the callback is faster, or uses less CPU):", *verdicts]
    return "\n".join(lines)


def _cpu_words(verdict):
    return {"above": "the callback uses less", "below": "the callback uses more",
            "within": "no difference resolved", "too few": "nothing resolved"}[verdict]

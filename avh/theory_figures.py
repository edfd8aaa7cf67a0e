"""Figures of the SELU moment map (the paper's Figure 2 view) with measured layer trajectories.

matplotlib only, through its Agg canvas and never pyplot, so figures can be drawn on any thread;
no TensorFlow (report.py draws with it): avh.figures reuses draw_moment_map for the live figure.
"""
import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from avh import theory

DEFAULT_LIMITS = ((-0.6, 0.6), (0.0, 2.5))  # (mean, variance): the paper's region around (0, 1)
ARROW_GRID = (15, 13)                        # arrows across the mean and variance axes
FIGURE_INCHES = (5.0, 4.5)
FIGURE_DPI = 100                             # 500 x 450 px, legible shown 350-400 px wide
FONT_SIZE = 10


def draw_moment_map(ax, trajectories=(), omega=0.0, tau=1.0, activation="selu", limits=None,
                    title=None, log_variance=False, legend_at="best"):
    """Draw the moment map g on matplotlib Axes `ax`: arrows from (mu, nu) towards g(mu, nu),
    the stable fixed point, and each trajectory.

    trajectories: (label, points) or (label, points, colour) items, `points` a sequence of
      (mean, variance) pairs in order (e.g. one layer's logged mean and std**2 over training);
    limits: ((mu_low, mu_high), (nu_low, nu_high)); by default DEFAULT_LIMITS, widened to hold
      every trajectory point.
    log_variance: the variance on a log axis (then nu_low > 0), which keeps the fixed point's
      neighbourhood legible beside variances of 50 (trained layers; see figures.py).
    Arrow lengths grow with the square root of the step g(mu, nu) - (mu, nu), so that both the
    slow approach near the fixed point and the big steps far from it stay visible.
    """
    trajectories = [as_trajectory(item, i) for i, item in enumerate(trajectories)]
    (mu_low, mu_high), (nu_low, nu_high) = limits or _limits_holding(trajectories)

    # Arrows on a grid that is even on screen, computed in axes fractions (0-1 across each axis)
    # so that an arrow's angle on screen is the step's true direction on either variance scale;
    # quiver gets each arrow's end in data units, which it draws right on log axes too.
    if log_variance:
        ax.set_yscale("log")
        ax.minorticks_off()  # a tick object each: half a redraw's time, for no label
        # 0.1, 1, 10 rather than 10^-1, 10^0, 10^1: the powers are mathtext, whose first parse
        # costs a process 0.15 s of CPU
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda nu, _: f"{nu:g}"))
        span = np.log(nu_high / nu_low)
        to_axis, from_axis = (lambda nu: np.log(nu / nu_low) / span), (lambda y: nu_low * np.exp(y * span))
        nu_points = np.geomspace(nu_low, nu_high, ARROW_GRID[1])
    else:
        to_axis = lambda nu: (nu - nu_low) / (nu_high - nu_low)
        from_axis = lambda y: nu_low + y * (nu_high - nu_low)
        nu_points = np.linspace(max(nu_low, 1e-3 * nu_high), nu_high, ARROW_GRID[1])
    mu_grid, nu_grid = np.meshgrid(np.linspace(mu_low, mu_high, ARROW_GRID[0]), nu_points)
    mu_next, nu_next = theory.moment_map(mu_grid, nu_grid, omega, tau, activation)
    d_mu = (mu_next - mu_grid) / (mu_high - mu_low)
    d_nu = to_axis(np.maximum(nu_next, 1e-9 * nu_high)) - to_axis(nu_grid)
    size = np.hypot(d_mu, d_nu)
    scale = np.sqrt(size / max(size.max(), 1e-12)) / np.maximum(size, 1e-12)
    cell = 0.9 / max(ARROW_GRID)
    ax.quiver(mu_grid, nu_grid, d_mu * scale * cell * (mu_high - mu_low),
              from_axis(to_axis(nu_grid) + d_nu * scale * cell) - nu_grid, angles="xy",
              scale_units="xy", scale=1, color="0.6", width=0.004, headwidth=4,
              headlength=4.5, zorder=1)

    try:
        mu_star, nu_star = theory.fixed_point(omega, tau, activation)
        ax.plot(mu_star, nu_star, marker="*", markersize=13, color="black", linestyle="none",
                zorder=2.5, label=f"fixed point ({mu_star:.2f}, {nu_star:.2f})")
    except ValueError:  # ReLU, or weights far from normalised: say so instead of a marker
        ax.text(0.02, 0.97, "no stable fixed point", transform=ax.transAxes, va="top",
                fontsize=FONT_SIZE - 1, color="0.3")

    for label, points, colour in trajectories:
        line, = ax.plot(points[:, 0], points[:, 1], color=colour, linewidth=1.6, zorder=2,
                        label=label)
        colour = line.get_color()
        ax.plot(*points[0], marker="o", markersize=6, markerfacecolor="white",
                markeredgecolor=colour, markeredgewidth=1.5, zorder=3)
        ax.plot(*points[-1], marker="o", markersize=6, color=colour, zorder=3)

    ax.set_xlim(mu_low, mu_high)
    ax.set_ylim(nu_low, nu_high)
    ax.set_xlabel("mean \u03bc", fontsize=FONT_SIZE)
    ax.set_ylabel("variance \u03bd", fontsize=FONT_SIZE)
    ax.tick_params(labelsize=FONT_SIZE - 1)
    # y given: matplotlib then skips placing the title above the tick labels (a third of a draw)
    ax.set_title(title or f"{activation} moment map, \u03c9 = {omega:g}, \u03c4 = {tau:g}",
                 fontsize=FONT_SIZE + 1)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=FONT_SIZE - 1, loc=legend_at, framealpha=0.85,
                  title="\u25cb start  \u25cf end" if trajectories else None,
                  title_fontsize=FONT_SIZE - 1)
    return ax


def moment_map_figure(trajectories=(), omega=0.0, tau=1.0, title=None, activation="selu",
                      limits=None, figsize=FIGURE_INCHES, dpi=FIGURE_DPI):
    """The moment map figure as an RGBA uint8 array of shape (height, width, 4), by default
    (450, 500, 4); arguments as in draw_moment_map."""
    fig, ax = agg_figure(figsize, dpi)
    draw_moment_map(ax, trajectories, omega, tau, activation, limits, title)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.11, top=0.92)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def agg_figure(figsize, dpi):
    """(a Figure with an Agg canvas of its own, its one Axes): no pyplot and no global state, so
    any thread may draw it (one at a time)."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def as_trajectory(item, index):
    label, points, *rest = item
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    colour = rest[0] if rest else f"C{index % 10}"
    return label, points, colour


def _limits_holding(trajectories):
    """DEFAULT_LIMITS widened by a margin to hold every trajectory point; variance from 0."""
    (mu_low, mu_high), (nu_low, nu_high) = DEFAULT_LIMITS
    if trajectories:
        points = np.concatenate([points for _, points, _ in trajectories])
        points = points[np.all(np.isfinite(points), axis=1)]
        if len(points):
            mu_min, nu_min = points.min(axis=0)
            mu_max, nu_max = points.max(axis=0)
            margin_mu = 0.08 * (max(mu_max, mu_high) - min(mu_min, mu_low))
            mu_low, mu_high = min(mu_low, mu_min - margin_mu), max(mu_high, mu_max + margin_mu)
            nu_high = max(nu_high, nu_max * 1.08)
            nu_low = min(nu_low, max(nu_min, 0.0))
    return (mu_low, mu_high), (nu_low, nu_high)

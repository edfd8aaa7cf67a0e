"""Tests of avh.theory against numerical integration and numpy simulations (no TensorFlow)."""
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, special

from avh import theory

# Pre-activation moments to check, including the extremes a trained layer reaches.
MEANS = (-5.0, -2.0, -0.5, 0.0, 0.3, 1.0, 5.0)
VARIANCES = (1e-3, 0.1, 1.0, 3.0, 100.0)

# The activations written out directly, independently of the closed forms under test.
REFERENCE_FUNCTIONS = {
    "selu": lambda z: theory.SELU_LAMBDA * (
        z if z > 0 else theory.SELU_ALPHA * math.expm1(z)),
    "elu": lambda z: z if z > 0 else theory.ELU_ALPHA * math.expm1(z),
    "relu": lambda z: max(z, 0.0),
    "lrelu": lambda z: z if z > 0 else 0.2 * z,
    "gelu": lambda z: z * special.ndtr(z),
}


def gaussian_expectation(f, mean, var):
    """E[f(z)] for z ~ N(mean, var) by adaptive quadrature in standard units, split at the kink
    z = 0 so that quad never integrates across it."""
    s = math.sqrt(var)

    def integrand(u):
        return f(mean + s * u) * math.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)

    kink = -mean / s
    pieces = [(-12.0, kink), (kink, 12.0)] if -12.0 < kink < 12.0 else [(-12.0, 12.0)]
    return sum(integrate.quad(integrand, a, b, epsabs=0.0, epsrel=1e-12, limit=200)[0]
               for a, b in pieces)


def reference_moments(name, mean, var):
    f = REFERENCE_FUNCTIONS[name]
    m = gaussian_expectation(f, mean, var)
    return m, gaussian_expectation(lambda z: (f(z) - m) ** 2, mean, var)  # centred: no cancellation


@pytest.mark.parametrize("name", theory.ACTIVATIONS)
def test_closed_form_moments_match_quadrature(name):
    points = list(itertools.product(MEANS, VARIANCES))
    means, variances = np.array(points).T
    params = {"slope": 0.2} if name == "lrelu" else {}
    got_mean, got_var = theory.activation_moments(name, means, variances, **params)
    assert got_mean.shape == got_var.shape == means.shape
    for (mean, var), m, v in zip(points, got_mean, got_var):
        want_m, want_v = reference_moments(name, mean, var)
        assert m == pytest.approx(want_m, rel=1e-7, abs=1e-12), (name, mean, var)
        assert v == pytest.approx(want_v, rel=1e-6, abs=1e-14), (name, mean, var)


def test_selu_moments_do_not_overflow_for_huge_variance():
    mean, var = theory.selu_moments([0.0, 50.0, -50.0], [1e4, 1e4, 1e4])
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(var))
    # Wide z: E[z; z>0] = s phi(0), P(z<=0) = 1/2 and E[e^z; z<=0] ~ phi(0) / s, to O(1/s^3).
    s, lam_alpha = 100.0, theory.SELU_LAMBDA * theory.SELU_ALPHA
    density_at_zero = 1 / math.sqrt(2 * math.pi)
    want = theory.SELU_LAMBDA * s * density_at_zero - lam_alpha / 2 + lam_alpha * density_at_zero / s
    assert mean[0] == pytest.approx(want, rel=1e-6)


def test_moments_reject_nonpositive_variance():
    with pytest.raises(ValueError, match="var_z"):
        theory.selu_moments(0.0, 0.0)
    with pytest.raises(ValueError, match="unknown activation"):
        theory.activation_moments("tanh", 0.0, 1.0)


def test_selu_constants_map_zero_one_to_itself():
    # The paper chose lambda and alpha exactly so that g(0, 1) = (0, 1) for omega = 0, tau = 1.
    mu, nu = theory.moment_map(0.0, 1.0, omega=0.0, tau=1.0)
    assert abs(mu) < 1e-6 and abs(nu - 1.0) < 1e-6


def test_fixed_point_for_normalised_weights_is_zero_one_and_stable():
    mu, nu = theory.fixed_point(omega=0.0, tau=1.0)
    assert mu == pytest.approx(0.0, abs=1e-9) and nu == pytest.approx(1.0, abs=1e-9)
    jacobian = theory.moment_map_jacobian(mu, nu, omega=0.0, tau=1.0)
    # The paper reports a spectral norm of 0.7877 < 1: g contracts around (0, 1).
    assert np.linalg.norm(jacobian, 2) == pytest.approx(0.7877, abs=1e-4)


def test_fixed_point_moves_with_the_weights_and_stays_attracting():
    mu, nu = theory.fixed_point(omega=-0.1, tau=0.95)  # inside the paper's Theorem 1 domain
    assert (mu, nu) != pytest.approx((0.0, 1.0), abs=1e-3)
    assert theory.moment_map(mu, nu, -0.1, 0.95) == pytest.approx((mu, nu), abs=1e-10)
    point = (0.4, 2.0)
    for _ in range(60):
        point = theory.moment_map(*point, omega=-0.1, tau=0.95)
    assert point == pytest.approx((mu, nu), abs=1e-6)


def test_fixed_point_refuses_maps_without_one():
    with pytest.raises(ValueError, match="no stable fixed point"):
        theory.fixed_point(omega=0.0, tau=1.0, activation="relu")  # variance shrinks to 0
    with pytest.raises(ValueError, match="repels"):
        theory.fixed_point(omega=1.0, tau=1.0)
    with pytest.raises(ValueError, match="no root with variance > 0"):  # ELU's variance -> 0
        theory.fixed_point(omega=0.0, tau=1.0, activation="elu")


def test_random_lecun_layer_matches_moment_map_within_sampling_error():
    rng = np.random.default_rng(0)
    fan_in, units, examples = 256, 64, 20000
    kernel = rng.normal(0.0, 1.0 / math.sqrt(fan_in), (fan_in, units))
    inputs = rng.normal(0.0, 1.0, (examples, fan_in))
    outputs = theory.SELU_LAMBDA * np.where(
        (z := inputs @ kernel) > 0, z, theory.SELU_ALPHA * np.expm1(np.minimum(z, 0)))
    omega, tau = kernel.sum(axis=0), np.square(kernel).sum(axis=0)
    want_mean, want_var = theory.moment_map(0.0, 1.0, omega, tau)
    # Per unit: sample mean and variance of `examples` draws, 5 standard errors.
    mean_error = np.sqrt(want_var / examples)
    var_error = want_var * math.sqrt(2.0 / examples) * 2.0  # x2: selu is skewed, not Gaussian
    assert np.all(np.abs(outputs.mean(axis=0) - want_mean) < 5 * mean_error)
    assert np.all(np.abs(outputs.var(axis=0) - want_var) < 5 * var_error)
    pooled_mean, pooled_var = theory.layer_moments(0.0, 1.0, omega, tau)
    assert outputs.mean() == pytest.approx(pooled_mean, abs=0.01)
    assert outputs.var() == pytest.approx(pooled_var, rel=0.01)


def test_layer_moments_add_the_spread_of_unit_means():
    # ReLU inputs (mu > 0) through He-normal weights: omega_j varies, so pooled > single-unit.
    omega = np.array([-1.0, 0.0, 1.0])
    tau = np.full(3, 2.0)
    mean, var = theory.layer_moments(0.5, 0.4, omega, tau, activation="relu")
    unit_means, unit_vars = theory.relu_moments(0.5 * omega, 0.8)
    assert mean == pytest.approx(unit_means.mean())
    assert var == pytest.approx(unit_vars.mean() + unit_means.var())
    assert var > theory.moment_map(0.5, 0.4, 0.0, 2.0, activation="relu")[1]


def correlation(inputs, kernel):
    """input_correlation of a Dense kernel measured on a batch, as avh.moments feeds it."""
    return theory.input_correlation(np.var(inputs @ kernel, axis=0), np.square(kernel).sum(axis=0),
                                    np.var(inputs))


def test_input_correlation_is_one_for_independent_inputs():
    rng = np.random.default_rng(2)
    inputs = rng.normal(0.3, 1.7, (50000, 100))
    kernel = rng.normal(0.0, 0.1, (100, 16))
    np.testing.assert_allclose(correlation(inputs, kernel), 1.0, atol=0.04)


def test_input_correlation_exceeds_one_when_weights_add_correlated_inputs():
    # Inputs with pairwise correlation rho; factor = (1 - rho) + rho omega^2 / tau for this
    # covariance, so weights of one sign (omega^2 > tau) see more variance than tau nu predicts.
    rng = np.random.default_rng(3)
    rho, fan_in, examples = 0.3, 50, 50000
    shared = rng.normal(size=(examples, 1))
    inputs = math.sqrt(rho) * shared + math.sqrt(1 - rho) * rng.normal(size=(examples, fan_in))
    kernel = np.abs(rng.normal(0.0, 1 / math.sqrt(fan_in), (fan_in, 8)))
    factor = correlation(inputs, kernel)
    omega, tau = kernel.sum(axis=0), np.square(kernel).sum(axis=0)
    assert np.all(factor > 1.5)
    np.testing.assert_allclose(factor, (1 - rho) + rho * omega ** 2 / tau, rtol=0.05)
    # The same inputs through weights that sum to zero cancel the shared part: factor < 1.
    balanced = kernel - kernel.mean(axis=0)
    assert np.all(correlation(inputs, balanced) < 0.8)


def test_moment_map_figure_is_an_rgba_image_with_content():
    from avh import theory_figures
    trajectory = [(0.4, 2.0)]
    for _ in range(5):
        trajectory.append(tuple(float(v) for v in theory.moment_map(*trajectory[-1])))
    image = theory_figures.moment_map_figure(
        [("3_conv3", trajectory), ("4_fc4", [(0.0, 0.7), (0.5, 20.0)], "tab:red")])
    assert image.shape == (450, 500, 4) and image.dtype == np.uint8
    assert np.all(image[..., 3] == 255)  # opaque: tf.summary.image shows it as drawn
    drawn = np.any(image[..., :3] < 200, axis=-1).mean()
    assert 0.03 < drawn < 0.6  # arrows, axes and lines, but not a filled block


def test_moment_map_draws_onto_given_axes_without_a_fixed_point():
    from matplotlib.figure import Figure
    from avh import theory_figures
    ax = Figure().add_subplot()
    theory_figures.draw_moment_map(ax, [("relu", [(0.5, 0.3), (0.6, 0.4)])], tau=1.0,
                                   activation="relu", limits=((-1, 1), (0, 3)))
    assert ax.get_xlim() == (-1, 1) and ax.get_ylim() == (0, 3)
    assert any("no stable fixed point" in text.get_text() for text in ax.texts)


def test_fixed_point_variance_grows_with_tau():
    # tau above 1 acts like correlated inputs (Var z = c tau nu): the fixed point moves up.
    variances = [theory.fixed_point(omega=0.0, tau=tau)[1] for tau in (0.7, 0.9, 1.0, 1.2, 1.5)]
    assert variances == sorted(variances)
    assert variances[2] == pytest.approx(1.0)


def test_theory_modules_load_without_tensorflow():
    import subprocess
    import sys
    code = ("import sys, avh.theory, avh.theory_figures; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent)
    assert result.returncode == 0


def test_scipy_integrate_loads_only_for_gelu_and_the_fixed_point_needs_no_scipy_optimize():
    """scipy.integrate holds memory a ReLU or SELU run's moments do not need; scipy.optimize cost
    a run's first moment map 0.3 s of CPU, which Newton's method in numpy does without."""
    import subprocess
    import sys
    code = ("import sys, avh.theory as t; loaded = lambda: {m for m in ('scipy.integrate', "
            "'scipy.optimize') if m in sys.modules}; t.selu_moments(0.1, 1.2); "
            "t.relu_moments(0.1, 1.2); t.fixed_point(); t.fixed_point(-0.1, 0.95); "
            "before = loaded(); t.gelu_moments(0.1, 1.2); print(sorted(before), sorted(loaded()))")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent,
                            capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[0] == "[] ['scipy.integrate', 'scipy.optimize']"  # integrate imports optimize


def test_fixed_point_agrees_with_a_root_finder_across_the_weights_moments():
    from scipy import optimize

    for omega, tau in [(0.0, 1.0), (-0.1, 0.95), (0.05, 1.1), (0.0, 0.7), (0.2, 1.5), (-0.3, 1.3)]:
        mu, nu = theory.fixed_point(omega, tau)
        root = optimize.root(lambda p: np.array(theory.moment_map(p[0], p[1], omega, tau)) - p,
                             (mu + 0.01, nu * 1.01), method="hybr", options={"xtol": 1e-14})
        assert (mu, nu) == pytest.approx(tuple(root.x), abs=1e-12)


def test_the_first_figures_of_a_process_load_no_setuptools_scipy_optimize_or_mathtext():
    """Each cost a process 0.15-0.4 s of CPU the first time: setuptools (tfplot's import of
    distutils), scipy.optimize (the moment map's fixed point) and mathtext's parser (a log
    axis' 10^k labels)."""
    import subprocess
    import sys
    code = ("import sys, numpy as np, matplotlib.mathtext as m, avh.figures as f; "
            "r = f.ReusedFigures(); "
            "r.draw('h', f.build_histogram, np.arange(82), 0.1, 1.0, 'dense'); "
            "r.draw('m', f.build_activation_map, np.ones((4, 4, 32), np.float32), 'conv'); "
            "r.draw('mm', f.build_moment_map, [('dense', [(0.1, 1.2), (0.4, 30.0)])], 't', "
            "figsize=(5, 4.5)); "
            "print(sorted(n for n in ('setuptools', 'tfplot', 'scipy.optimize') if n in sys.modules), "
            "m.MathTextParser._parser is None, r.full_draws)")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent,
                            capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[0] == "[] True 3"

"""The mean/variance theory of self-normalizing networks (Klambauer et al. 2017, arXiv 1706.02515):
what each activation does to the first two moments of a Gaussian pre-activation, the SELU moment
map g and its fixed point, and the input-correlation factor that measures how far a layer is from
the theory's independent inputs.

Pure numpy/scipy, so the report script and tests can use it: no TensorFlow or Keras import here.
"""
import math

import numpy as np
from scipy import special

# scipy.integrate is imported where it is used, by GELU's second moment only: loading it costs
# memory and CPU that a run that logs ReLU or SELU layers' moments would otherwise carry for
# nothing (avh.moments imports this module). The fixed point needs no scipy.optimize.

# SELU's constants: the solution of g(0, 1) = (0, 1) for omega = 0, tau = 1 (paper Eq. 8-9),
# to the digits Keras and PyTorch use.
SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
ELU_ALPHA = 1.0            # Keras' default
ACTIVATIONS = ("selu", "relu", "lrelu", "elu", "gelu")

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


def normal_density(x):
    """The standard normal density: the shape SELU drives a layer's activations towards, drawn
    beside every histogram."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * x * x) / _SQRT2PI


# --- Moments of a function of z ~ N(m, v), the building blocks ---------------------------------

def _positive_part_moments(m, v):
    """P(z > 0), E[z; z > 0] and E[z^2; z > 0] for z ~ N(m, v)."""
    s = np.sqrt(v)
    a = m / s
    p = special.ndtr(a)                       # accurate in both tails, unlike 1 - erfc
    density = np.exp(-0.5 * a * a) / _SQRT2PI
    first = m * p + s * density
    second = (m * m + v) * p + m * s * density
    return p, first, second


def _exp_below_zero(k, m, v):
    """E[exp(k z); z <= 0] for z ~ N(m, v), k > 0.

    Equals exp(k m + k^2 v / 2) * Phi(-(m + k v) / s). The exponential alone overflows for large
    v and Phi underflows, so for t = (m + k v) / (s sqrt 2) >= 0 the product is rewritten with the
    scaled erfcx(t) = exp(t^2) erfc(t): the exponents then combine to -m^2 / (2 v), which is <= 0.
    """
    s = np.sqrt(v)
    t = (m + k * v) / (s * _SQRT2)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        scaled = 0.5 * special.erfcx(t) * np.exp(-m * m / (2.0 * v))
        # t < 0 means m < -k v, so the exponent k m + k^2 v / 2 < -k^2 v / 2 is negative: safe.
        direct = 0.5 * special.erfc(t) * np.exp(k * m + 0.5 * k * k * v)
    return np.where(t >= 0, scaled, direct)


def _as_moments_args(mean_z, var_z):
    m = np.asarray(mean_z, dtype=np.float64)
    v = np.asarray(var_z, dtype=np.float64)
    if np.any(~(v > 0)):
        raise ValueError(f"var_z must be > 0 everywhere. Received: var_z={var_z!r}")
    return np.broadcast_arrays(m, v)


def _mean_and_variance(first, second):
    """(mean, variance) from the first and second raw moments; variance clipped at 0 where
    rounding makes E[f^2] - E[f]^2 a hair negative."""
    return first, np.maximum(second - first * first, 0.0)


def selu_moments(mean_z, var_z, lam=SELU_LAMBDA, alpha=SELU_ALPHA):
    """(mean, variance) of selu(z) for z ~ N(mean_z, var_z), elementwise over numpy arrays.

    selu(z) = lam z for z > 0 and lam alpha (e^z - 1) otherwise. With P = P(z > 0):
      E[selu]   = lam (E[z; z>0] + alpha E[e^z; z<=0] - alpha (1 - P))
      E[selu^2] = lam^2 (E[z^2; z>0] + alpha^2 (E[e^2z; z<=0] - 2 E[e^z; z<=0] + 1 - P))
    This is the paper's Eq. 4-5 (and A3) written with mean mu*omega and variance nu*tau as
    mean_z and var_z. The variance is E[f^2] - E[f]^2 in float64, so its relative error is about
    1e-16 E[f^2] / Var: fine unless nearly all mass sits deep in the saturated tail (mean_z = -5,
    var_z = 1e-3 still gives ~1e-8; mean_z = -30, var_z = 1 gives only an absolute ~1e-15).
    """
    m, v = _as_moments_args(mean_z, var_z)
    p, pos1, pos2 = _positive_part_moments(m, v)
    q = special.ndtr(-m / np.sqrt(v))          # P(z <= 0), not 1 - p: keeps its tiny values
    e1 = _exp_below_zero(1.0, m, v)
    e2 = _exp_below_zero(2.0, m, v)
    first = lam * (pos1 + alpha * (e1 - q))
    second = lam * lam * (pos2 + alpha * alpha * (e2 - 2.0 * e1 + q))
    return _mean_and_variance(first, second)


def elu_moments(mean_z, var_z, alpha=ELU_ALPHA):
    """(mean, variance) of elu(z) for z ~ N(mean_z, var_z): SELU with lam = 1."""
    return selu_moments(mean_z, var_z, lam=1.0, alpha=alpha)


def lrelu_moments(mean_z, var_z, slope):
    """(mean, variance) of LeakyReLU(z) = max(z, slope z) (0 <= slope <= 1) for
    z ~ N(mean_z, var_z): the rectified Gaussian's moments, since
    lrelu(z) = slope z + (1 - slope) relu(z) and lrelu(z)^2 = slope^2 z^2 + (1 - slope^2) relu(z)^2.
    """
    m, v = _as_moments_args(mean_z, var_z)
    _, pos1, pos2 = _positive_part_moments(m, v)
    first = slope * m + (1.0 - slope) * pos1
    second = slope * slope * (m * m + v) + (1.0 - slope * slope) * pos2
    return _mean_and_variance(first, second)


def relu_moments(mean_z, var_z):
    """(mean, variance) of relu(z) for z ~ N(mean_z, var_z) (the rectified Gaussian)."""
    return lrelu_moments(mean_z, var_z, slope=0.0)


def gelu_moments(mean_z, var_z):
    """(mean, variance) of the exact GELU z Phi(z) for z ~ N(mean_z, var_z).

    The mean has a closed form (E[z Phi(z)] = m Phi(m / r) + v phi(m / r) / r, r = sqrt(1 + v));
    E[(z Phi(z))^2] does not, so it is integrated numerically, one point at a time: slow (~1 ms
    a point), meant for a layer's worth of numbers, not for images.
    """
    m, v = _as_moments_args(mean_z, var_z)
    r = np.sqrt(1.0 + v)
    first = m * special.ndtr(m / r) + v * np.exp(-0.5 * (m / r) ** 2) / (_SQRT2PI * r)
    second = np.vectorize(_gelu_second_moment, otypes=[np.float64])(m, v)
    return _mean_and_variance(first, second)


def _gelu_second_moment(m, v):
    s = math.sqrt(v)

    def integrand(u):  # in standard units, z = m + s u
        z = m + s * u
        return (z * special.ndtr(z)) ** 2 * math.exp(-0.5 * u * u) / _SQRT2PI

    from scipy import integrate  # see the imports

    # GELU bends within a few units of z = 0: tell quad where that is when var_z is large.
    bend = sorted(u for u in ((-3.0 - m) / s, -m / s, (3.0 - m) / s) if -12.0 < u < 12.0)
    value, _ = integrate.quad(integrand, -12.0, 12.0, points=bend or None, limit=200,
                              epsabs=0.0, epsrel=1e-11)
    return value


def activation_moments(name, mean_z, var_z, **params):
    """(mean, variance) of activation `name` (one of ACTIVATIONS) applied to z ~ N(mean_z, var_z):
    the theory's prediction of a layer's output moments from its pre-activation moments.
    `params` go to the activation (`slope` for lrelu, required: avh.moments reads it from the
    layer; `alpha` for elu, `lam`/`alpha` for selu)."""
    functions = {"selu": selu_moments, "relu": relu_moments, "lrelu": lrelu_moments,
                 "elu": elu_moments, "gelu": gelu_moments}
    if name not in functions:
        raise ValueError(f"unknown activation; choose from {', '.join(ACTIVATIONS)}. "
                         f"Received: name={name!r}")
    return functions[name](mean_z, var_z, **params)


# --- The SELU moment map g and its fixed point --------------------------------------------------

def moment_map(mu, nu, omega=0.0, tau=1.0, activation="selu"):
    """The paper's map g: (mu, nu) -> (mu_tilde, nu_tilde) (Eq. 3-5).

    A unit z = w.x whose n inputs x_i are independent with mean mu and variance nu has
    E[z] = mu omega and Var[z] = nu tau, where omega = sum_i w_i and tau = sum_i w_i^2; taking z
    Gaussian (central limit), its activation's mean and variance are g(mu, nu). The mean of the
    next layer's inputs is mu_tilde and their variance nu_tilde, so iterating g follows the
    moments through a deep stack of such layers.
    """
    mu = np.asarray(mu, dtype=np.float64)
    nu = np.asarray(nu, dtype=np.float64)
    return activation_moments(activation, mu * omega, nu * tau)


def moment_map_jacobian(mu, nu, omega=0.0, tau=1.0, activation="selu", step=1e-6):
    """The 2x2 Jacobian d(mu_tilde, nu_tilde) / d(mu, nu) of g at one point, by central
    differences (g is smooth in mu and nu, so this is accurate to ~1e-9)."""
    def g(point):
        return np.array(moment_map(point[0], point[1], omega, tau, activation), dtype=np.float64)

    point = np.array([mu, nu], dtype=np.float64)
    columns = []
    for i in range(2):
        delta = np.zeros(2)
        delta[i] = step * max(1.0, abs(point[i]))
        columns.append((g(point + delta) - g(point - delta)) / (2.0 * delta[i]))
    return np.stack(columns, axis=1)


NEWTON_STEPS = 50  # polishing fixed_point's iterate: quadratic convergence needs a handful


def fixed_point(omega=0.0, tau=1.0, activation="selu", start=(0.0, 1.0), iterations=500):
    """The stable fixed point (mu*, nu*) of g for these weight moments: (0, 1) for omega = 0,
    tau = 1 with SELU.

    Iterates g from `start` (an attracting fixed point draws the iterates in, a repelling one
    would not be found), then polishes the result with Newton's method (slow contractions, with a
    spectral radius near 1, leave the iterates short of the point). Raises ValueError when the
    iterates do not settle or the point found is not stable (Jacobian's spectral radius >= 1),
    e.g. for ReLU and LeakyReLU, whose variance shrinks to 0 or grows without bound.
    """
    def fail(reason):
        return ValueError(f"g has no stable fixed point reached from {tuple(start)} for "
                          f"omega={omega}, tau={tau}, activation={activation!r}: {reason}")

    point = np.array(start, dtype=np.float64)
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            new = np.array(moment_map(point[0], point[1], omega, tau, activation))
            if not np.all(np.isfinite(new)) or not 1e-12 < new[1] < 1e12:
                # ReLU-like maps shrink or blow up the variance geometrically: no fixed point.
                raise fail(f"the variance runs off to {new[1]:.3g}")
            converged = np.max(np.abs(new - point)) < 1e-13
            point = new
            if converged:
                break
    # Newton's method on g(p) - p from the last iterate, with g's Jacobian (in numpy: loading
    # scipy.optimize for this cost 0.3 s of CPU at a run's first moment map).
    last = tuple(float(v) for v in point)
    try:
        for _ in range(NEWTON_STEPS):
            jacobian = moment_map_jacobian(point[0], point[1], omega, tau, activation)
            residual = np.array(moment_map(point[0], point[1], omega, tau, activation)) - point
            try:
                step = np.linalg.solve(jacobian - np.eye(2), residual)
            except np.linalg.LinAlgError:  # g - identity singular: judged by the residual below
                break
            point = point - step
            if not (np.all(np.isfinite(point)) and point[1] > 0):
                raise ValueError("a step to a variance <= 0")
            if np.max(np.abs(step)) < 1e-15:
                break
        mu_star, nu_star = point
        jacobian = moment_map_jacobian(mu_star, nu_star, omega, tau, activation)
    except ValueError:  # a step to a variance <= 0, or one g (or its Jacobian's) cannot take
        raise fail(f"no root with variance > 0 near the last iterate {last}") from None
    residual = np.max(np.abs(np.array(moment_map(mu_star, nu_star, omega, tau, activation))
                             - point))
    if residual > 1e-9:
        raise fail(f"the iterates stopped at {last}")
    radius = np.max(np.abs(np.linalg.eigvals(jacobian)))
    if radius >= 1:
        raise fail(f"({mu_star:.4g}, {nu_star:.4g}) is a fixed point but repels "
                   f"(Jacobian spectral radius {radius:.3g})")
    return float(mu_star), float(nu_star)


def layer_moments(mu, nu, omega, tau, activation="selu", correlation=1.0, **params):
    """(mean, variance) of a whole layer's outputs pooled over its units, as the app logs them.

    Unit j gets z_j ~ N(mu omega_j, correlation_j nu tau_j) (`correlation` is the
    input_correlation factor, 1 for independent inputs). Pooling over units mixes their output
    distributions: mean = average of the unit means, variance = average of the unit variances
    plus the spread of the unit means. That spread is why ReLU layers need tau ~ 2 (He init):
    with mu > 0 and omega_j ~ N(0, tau) it adds mu^2 tau, which the single-unit map g omits.
    """
    omega = np.asarray(omega, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    unit_mean, unit_var = activation_moments(
        activation, mu * omega, np.asarray(correlation) * nu * tau, **params)
    return float(np.mean(unit_mean)), float(np.mean(unit_var) + np.var(unit_mean))


# --- What a layer's weights and inputs contribute ------------------------------------------------

def input_correlation(var_z, tau, nu_in):
    """Var(z) / (tau nu_in) per unit: how far a unit's measured pre-activation variance is from
    what independent inputs would give.

    var_z: each unit's pre-activation variance (z = w.x, before bias and activation) measured over
      a batch (for a conv unit, over examples and positions);
    tau: each unit's sum of squared weights (avh.moments.unit_moments);
    nu_in: the variance of the layer's input, over all input components and examples pooled
      (np.var of the whole input batch, the square of the std the app logs for the layer below).

    The theory assumes every input component has the same mean and the same variance nu_in, and
    that components are independent; then Var(z) = sum_i w_i^2 nu_in = tau nu_in and the factor
    is 1. In general Var(z) = w' Sigma w with Sigma the inputs' covariance, so the factor is
    1 + (sum over i != j of w_i w_j Cov(x_i, x_j)) / (tau nu_in): above 1 when the weights add up
    correlated inputs, below 1 when they cancel them. (If component means differ, the pooled
    nu_in also holds the spread of those means, which Var(z) does not see.)
    """
    var_z = np.asarray(var_z, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    return var_z / (tau * float(nu_in))

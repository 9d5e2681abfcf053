r"""A simulation of two-track secondary-vertex candidates for a displaced-vertex trigger.

This is a simulation, not LHCb data. It is built from textbook kinematics and
published orders of magnitude for a forward spectrometer with a silicon vertex
detector. A classifier trained on it faces the problem of the LHCb topological
trigger, which selects decays of long-lived b hadrons from a much larger
background of prompt track pairs and fake vertices.

Every candidate is made the same way. Two charged tracks (pion mass) are
generated as straight lines, each line is shifted perpendicular to itself by
the impact-parameter (IP) resolution, and the trigger features are then
computed from the smeared lines only, as a reconstruction would:

- IP of each track to the primary vertex (PV, the origin) and its
  :math:`\chi^2 = \mathrm{IP}^2 / \sigma_\mathrm{IP}^2`;
- the two-track vertex at the point of closest approach, the distance of
  closest approach (DOCA) and the vertex-fit :math:`\chi^2 = \mathrm{DOCA}^2 /
  (\sigma_1^2 + \sigma_2^2)`;
- the flight distance (FD) from the PV to that vertex and its :math:`\chi^2`;
- the corrected mass :math:`m_\mathrm{corr} = \sqrt{m_\mathrm{vis}^2 +
  p_{T,\mathrm{miss}}^2} + p_{T,\mathrm{miss}}`, where :math:`p_{T,\mathrm{miss}}` is
  the visible momentum transverse to the flight direction.

Categories (column ``category``):

``b`` (signal, ``label = 1``)
    A b hadron of mass 5.28 GeV with transverse momentum drawn from a gamma
    distribution (shape 2, mean ``b_pt_mean`` GeV, a falling spectrum above a
    few GeV), pseudorapidity uniform in 2 < eta < 5 and uniform azimuth. Its
    proper decay time is exponential with mean ``b_lifetime`` ps
    (:math:`c\tau \approx 450\,\mu\mathrm{m}` for 1.5 ps) and it flies
    :math:`L = \beta\gamma c t` before decaying. The decay is a chain of two-body
    decays: :math:`b \to (h h) + X` with :math:`X` invisible, then
    :math:`(h h) \to h h`, isotropic in each rest frame. With probability 0.15 the
    decay is fully reconstructed (no :math:`X`, :math:`m_{hh}` = 5.28 GeV); otherwise
    :math:`m_X` is uniform in 0.14-2.5 GeV and :math:`m_{hh}` uniform between
    :math:`2 m_\pi` and :math:`5.28 - m_X` GeV. Both tracks come from the b vertex.
``charm`` (background)
    The same generator for a charm hadron: mass 1.865 GeV, proper decay time
    exponential with mean 0.41 ps, a softer spectrum (gamma, mean 4 GeV), 30 %
    fully reconstructed and :math:`m_X` uniform in 0.14-0.9 GeV otherwise.
``prompt`` (background)
    Two tracks from the PV: true IP zero, so IP, FD and DOCA come from
    resolution only.
``fake`` (background)
    Two tracks that do not share a vertex. Track A comes from the PV with
    probability 0.5 and otherwise has a true IP drawn from an exponential of
    mean 0.2 mm (daughters of strange hadrons, material interactions, badly
    measured tracks). The fake vertex lies on track A at an exponential distance
    of mean 2 mm beyond A's point of closest approach to the PV. Track B, of
    independent direction, passes that point at a true distance drawn from an
    exponential of mean 0.05 mm.

Track transverse momenta of the ``prompt`` and ``fake`` categories are
:math:`0.5 + \mathrm{Exp}(0.8)` GeV and their pseudorapidities uniform in
2 < eta < 5.

Resolution: the IP resolution per transverse coordinate is
:math:`\sigma_\mathrm{IP} = 15 + 29 / p_T[\mathrm{GeV}]\ \mu\mathrm{m}`. This is
an assumption of the simulation: the usual form of a constant plus a
multiple-scattering term, with values of the order of tens of micrometres
reported for the LHCb vertex detector, not a fit to its data. The smearing is a
Gaussian core with non-Gaussian tails: 10 % of tracks (30 % for ``fake``) are
smeared three times (five times for ``fake``) wider, while every
:math:`\chi^2` still divides by the core :math:`\sigma_\mathrm{IP}`, as a
reconstruction that does not know about the tails would. The vertex position
error is taken as :math:`\sqrt{\sigma_1^2 + \sigma_2^2} / (2 \sin(\theta/2))` along
the candidate direction, for an opening angle :math:`\theta` between the tracks,
and :math:`(\sigma_1^{-2} + \sigma_2^{-2})^{-1/2}` across it.

Selection applied to every category before a candidate is kept: both tracks
inside 2 < eta < 5 with :math:`p_T > 0.5` GeV, and DOCA < 0.2 mm.

Not simulated: PV position resolution and multiple PVs, track angular
resolution, magnetic-field curvature, tracks from the charm vertex of a
:math:`b \to c` cascade, ghost tracks, three-track candidates, and particle
identification. Absolute rates are not modelled; the class mixture is set by
the arguments.
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np

from ..errors import DataError

__all__ = ["FEATURES", "make_trigger_candidates"]

logger = logging.getLogger(__name__)

#: Feature columns, in the order of the returned frame.
FEATURES = (
    "sum_pt",
    "min_pt",
    "log_min_ip_chi2",
    "log_fd_chi2",
    "vertex_chi2",
    "doca",
    "mcorr",
    "pt",
)

_C_MM_PER_PS = 0.299792458
_PION_MASS = 0.13957
_B_MASS = 5.2797
_CHARM_MASS = 1.8648
_CHARM_LIFETIME_PS = 0.41
_CHARM_PT_MEAN = 4.0
_PT_SHAPE = 2.0
_ETA_RANGE = (2.0, 5.0)
_MIN_TRACK_PT = 0.5
_MAX_DOCA_MM = 0.2
_BACKGROUND_PT_OFFSET, _BACKGROUND_PT_SLOPE = 0.5, 0.8
# (core fraction, tail width factor) of the IP smearing.
_TAILS = {"clean": (0.9, 3.0), "fake": (0.7, 5.0)}


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _norm(a):
    return np.sqrt(_dot(a, a))


def _unit(a):
    return a / _norm(a)


def _cross(a, b):
    return np.stack(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


# Vectors are stored as (3, N) arrays with x, y and z rows, so that component
# sums run over contiguous memory, which is faster than an (N, 3) layout.


def _direction(eta, phi):
    theta = 2.0 * np.arctan(np.exp(-eta))
    return np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])


def _isotropic(rng, n):
    cos_theta = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    return np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta])


def _boost(energy, momentum, beta):
    """Boost four-vectors ``(energy (N,), momentum (3, N))`` by velocity ``beta (3, N)``."""
    gamma = 1.0 / np.sqrt(1.0 - _dot(beta, beta))
    beta_p = _dot(beta, momentum)
    # (gamma - 1) / beta^2 equals gamma^2 / (gamma + 1), which has no 0/0 at beta = 0.
    factor = gamma**2 / (gamma + 1.0) * beta_p + gamma * energy
    return gamma * (energy + beta_p), momentum + factor * beta


def _two_body_momentum(mass, m1, m2):
    """Momentum of each daughter in the rest frame of a two-body decay."""
    arg = (mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2)
    return np.sqrt(np.clip(arg, 0.0, None)) / (2.0 * mass)


def _perpendicular_basis(d):
    """Two unit vectors orthogonal to each column of ``d (3, N)`` and to each other."""
    # Cross with the x axis unless d is close to it, then with the y axis.
    near_x = np.abs(d[0]) > 0.9
    helper = np.stack([np.where(near_x, 0.0, 1.0), np.where(near_x, 1.0, 0.0), np.zeros_like(d[0])])
    e1 = _unit(_cross(d, helper))
    return e1, _cross(d, e1)


def _ip_resolution_mm(pt):
    return (15.0 + 29.0 / pt) * 1e-3


def _smear_lines(rng, point, direction, pt, tails):
    """Shift each line ``point + s * direction`` perpendicular to itself by the IP resolution."""
    n = len(pt)
    core_fraction, tail_factor = tails
    width = _ip_resolution_mm(pt) * np.where(rng.random(n) < core_fraction, 1.0, tail_factor)
    e1, e2 = _perpendicular_basis(direction)
    return point + width * (rng.standard_normal(n) * e1 + rng.standard_normal(n) * e2)


def _sample_pt(rng, mean, n):
    return rng.gamma(_PT_SHAPE, mean / _PT_SHAPE, n)


def _heavy_decays(rng, n, *, mass, lifetime, pt_mean, full_fraction, max_missing_mass):
    """Generate ``n`` heavy-hadron decays to two visible tracks plus an invisible system.

    Returns the decay vertex ``(3, n)`` in mm, the two track momenta ``(3, n)``
    each in GeV, and the proper decay time ``(n,)`` in ps.
    """
    pt = _sample_pt(rng, pt_mean, n)
    eta = rng.uniform(*_ETA_RANGE, n)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    direction = _direction(eta, phi)
    momentum = pt * np.cosh(eta) * direction
    energy = np.sqrt(_dot(momentum, momentum) + mass**2)
    decay_time = rng.exponential(lifetime, n)
    # L = beta * gamma * c * t with beta * gamma = p / m.
    flight = _norm(momentum) / mass * _C_MM_PER_PS * decay_time
    vertex = flight * direction

    full = rng.random(n) < full_fraction
    missing_mass = np.where(full, 0.0, rng.uniform(_PION_MASS, max_missing_mass, n))
    pair_mass = rng.uniform(2.0 * _PION_MASS, mass - missing_mass)
    pair_mass = np.where(full, mass, pair_mass)

    # Parent rest frame: the visible pair recoils against X.
    q_pair = _two_body_momentum(mass, pair_mass, missing_mass)
    pair_momentum = q_pair * _isotropic(rng, n)
    pair_energy = np.sqrt(q_pair**2 + pair_mass**2)
    # Pair rest frame: back-to-back pions.
    q_track = _two_body_momentum(pair_mass, _PION_MASS, _PION_MASS)
    track_momentum = q_track * _isotropic(rng, n)
    track_energy = np.sqrt(q_track**2 + _PION_MASS**2)

    pair_beta = pair_momentum / pair_energy
    parent_beta = momentum / energy
    tracks = []
    for sign in (1.0, -1.0):
        e, p = _boost(track_energy, sign * track_momentum, pair_beta)
        _, p = _boost(e, p, parent_beta)
        tracks.append(p)
    return vertex, tracks[0], tracks[1], decay_time


def _random_tracks(rng, n):
    pt = _BACKGROUND_PT_OFFSET + rng.exponential(_BACKGROUND_PT_SLOPE, n)
    eta = rng.uniform(*_ETA_RANGE, n)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    return pt * np.cosh(eta) * _direction(eta, phi)


def _fake_vertices(rng, n):
    """Generate pairs of tracks that pass close to each other without sharing a vertex.

    Returns a point on each track line and the two momenta, each ``(3, n)``.
    """
    p_a, p_b = _random_tracks(rng, n), _random_tracks(rng, n)
    d_a, d_b = _unit(p_a), _unit(p_b)

    displaced = rng.random(n) < 0.5
    ip_a = np.where(displaced, rng.exponential(0.2, n), 0.0)
    e1, e2 = _perpendicular_basis(d_a)
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    closest_a = ip_a * (np.cos(angle) * e1 + np.sin(angle) * e2)
    crossing = closest_a + rng.exponential(2.0, n) * d_a

    # Track B misses the crossing point by a true DOCA along the common perpendicular.
    normal = _unit(_cross(d_a, d_b))
    point_b = crossing + rng.exponential(0.05, n) * normal
    return closest_a, point_b, p_a, p_b


def _closest_approach(point1, d1, point2, d2):
    """Closest points of two lines ``point + s * d`` with unit ``d``, each ``(3, N)``."""
    w0 = point1 - point2
    b = _dot(d1, d2)
    d = _dot(d1, w0)
    e = _dot(d2, w0)
    denominator = np.clip(1.0 - b**2, 1e-12, None)
    s = (b * e - d) / denominator
    t = (e - b * d) / denominator
    return point1 + s * d1, point2 + t * d2


def _reconstruct(rng, point1, p1, point2, p2, tails):
    """Smear the two track lines and compute the trigger features from them."""
    pt1, pt2 = np.hypot(p1[0], p1[1]), np.hypot(p2[0], p2[1])
    d1, d2 = _unit(p1), _unit(p2)
    point1 = _smear_lines(rng, point1, d1, pt1, tails)
    point2 = _smear_lines(rng, point2, d2, pt2, tails)
    sigma1, sigma2 = _ip_resolution_mm(pt1), _ip_resolution_mm(pt2)

    # IP: distance from the PV (origin) to each measured line.
    ip1 = _norm(point1 - _dot(point1, d1) * d1)
    ip2 = _norm(point2 - _dot(point2, d2) * d2)
    min_ip_chi2 = np.minimum((ip1 / sigma1) ** 2, (ip2 / sigma2) ** 2)

    closest1, closest2 = _closest_approach(point1, d1, point2, d2)
    doca = _norm(closest1 - closest2)
    weight1, weight2 = sigma1**-2, sigma2**-2
    vertex = (weight1 * closest1 + weight2 * closest2) / (weight1 + weight2)
    vertex_chi2 = doca**2 / (sigma1**2 + sigma2**2)

    # FD chi2 with an error ellipsoid elongated along the candidate direction.
    visible = p1 + p2
    along = _unit(visible)
    opening = np.arccos(np.clip(_dot(d1, d2), -1.0, 1.0))
    sigma_along = np.hypot(sigma1, sigma2) / (2.0 * np.sin(np.clip(opening, 1e-3, None) / 2.0))
    sigma_across = 1.0 / np.sqrt(weight1 + weight2)
    fd_along = _dot(vertex, along)
    fd_across2 = np.clip(_dot(vertex, vertex) - fd_along**2, 0.0, None)
    fd_chi2 = (fd_along / sigma_along) ** 2 + fd_across2 / sigma_across**2

    energy = np.sqrt(_dot(p1, p1) + _PION_MASS**2) + np.sqrt(_dot(p2, p2) + _PION_MASS**2)
    visible_mass2 = np.clip(energy**2 - _dot(visible, visible), 0.0, None)
    pt_miss = _norm(_cross(visible, _unit(vertex)))
    mcorr = np.sqrt(visible_mass2 + pt_miss**2) + pt_miss

    eta1, eta2 = np.arctanh(d1[2]), np.arctanh(d2[2])
    selected = (
        (np.minimum(pt1, pt2) > _MIN_TRACK_PT)
        & (np.minimum(eta1, eta2) > _ETA_RANGE[0])
        & (np.maximum(eta1, eta2) < _ETA_RANGE[1])
        & (doca < _MAX_DOCA_MM)
    )
    columns = {
        "sum_pt": pt1 + pt2,
        "min_pt": np.minimum(pt1, pt2),
        "log_min_ip_chi2": np.log(min_ip_chi2),
        "log_fd_chi2": np.log(fd_chi2),
        "vertex_chi2": vertex_chi2,
        "doca": doca,
        "mcorr": mcorr,
        "pt": np.hypot(visible[0], visible[1]),
        "fd": _norm(vertex),
    }
    return columns, selected


def _generate_category(rng, category, n, *, b_lifetime, b_pt_mean):
    """Generate ``n`` unselected candidates of one category as a dict of columns."""
    if category in ("b", "charm"):
        if category == "b":
            settings = dict(
                mass=_B_MASS, lifetime=b_lifetime, pt_mean=b_pt_mean,
                full_fraction=0.15, max_missing_mass=2.5,
            )
        else:
            settings = dict(
                mass=_CHARM_MASS, lifetime=_CHARM_LIFETIME_PS, pt_mean=_CHARM_PT_MEAN,
                full_fraction=0.3, max_missing_mass=0.9,
            )
        vertex, p1, p2, decay_time = _heavy_decays(rng, n, **settings)
        columns, selected = _reconstruct(rng, vertex, p1, vertex, p2, _TAILS["clean"])
        columns["decay_time"] = decay_time
        columns["true_fd"] = _norm(vertex)
    elif category == "prompt":
        p1, p2 = _random_tracks(rng, n), _random_tracks(rng, n)
        origin = np.zeros((3, n))
        columns, selected = _reconstruct(rng, origin, p1, origin, p2, _TAILS["clean"])
        columns["decay_time"] = np.full(n, np.nan)
        columns["true_fd"] = np.zeros(n)
    else:
        point1, point2, p1, p2 = _fake_vertices(rng, n)
        columns, selected = _reconstruct(rng, point1, p1, point2, p2, _TAILS["fake"])
        columns["decay_time"] = np.full(n, np.nan)
        columns["true_fd"] = np.full(n, np.nan)
    return {name: values[selected] for name, values in columns.items()}


def _generate_selected(rng, category, n, **settings):
    """Generate batches until ``n`` candidates of ``category`` pass the selection."""
    parts, have, efficiency = [], 0, 0.5
    while have < n:
        size = int(1.1 * (n - have) / efficiency) + 64
        part = _generate_category(rng, category, size, **settings)
        kept = len(part["sum_pt"])
        efficiency = max(kept / size, 0.01)
        parts.append(part)
        have += kept
    return {name: np.concatenate([p[name] for p in parts])[:n] for name in parts[0]}


def _check_fraction(value, name, *, allow_zero=True, allow_one=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise DataError(f"{name} must be a finite number, got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    high_ok = value <= 1 if allow_one else value < 1
    if not (low_ok and high_ok):
        low = "[0" if allow_zero else "(0"
        high = "1]" if allow_one else "1)"
        raise DataError(f"{name} must lie in {low}, {high}, got {value!r}")
    return float(value)


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise DataError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise DataError(f"{name} must be finite, got {value!r}")
    return float(value)


def _make_rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DataError(
            f"seed must be a non-negative integer or a numpy.random.Generator, got {seed!r}; "
            "pass an explicit seed so the sample can be reproduced"
        )
    return np.random.default_rng(int(seed))


def make_trigger_candidates(
    n: int,
    *,
    seed,
    signal_fraction: float = 0.2,
    charm_fraction: float = 0.1,
    fake_fraction: float = 0.3,
    b_lifetime: float = 1.5,
    b_pt_mean: float = 7.0,
    shuffle: bool = True,
):
    r"""Simulate two-track secondary-vertex candidates for a displaced-vertex trigger.

    The physics model, every distribution and the selection are described in
    :mod:`lipmono.datasets.trigger`. The sample is a simulation, not LHCb data.

    Parameters
    ----------
    n : int
        Number of candidates, after the selection.
    seed : int or numpy.random.Generator
        Seed of the random generator. The same integer always gives the same frame.
    signal_fraction : float, default=0.2
        Fraction of ``b`` (signal) candidates, in (0, 1).
    charm_fraction : float, default=0.1
        Fraction of the background that is ``charm``, in [0, 1).
    fake_fraction : float, default=0.3
        Fraction of the background that is ``fake``, in [0, 1). The rest of the
        background is ``prompt``; ``charm_fraction + fake_fraction`` must be below 1.
    b_lifetime : float, default=1.5
        Mean proper decay time of the b hadrons in ps (:math:`c\tau` = 450 um at 1.5 ps).
    b_pt_mean : float, default=7.0
        Mean transverse momentum of the b hadrons in GeV.
    shuffle : bool, default=True
        Shuffle the rows; otherwise they are grouped by category.

    Returns
    -------
    pandas.DataFrame
        ``n`` rows. The float64 feature columns come first, in :data:`FEATURES`
        order:

        - ``sum_pt`` and ``min_pt``: scalar sum and minimum of the track :math:`p_T`, GeV;
        - ``log_min_ip_chi2``: natural log of the smaller track IP :math:`\chi^2`;
        - ``log_fd_chi2``: natural log of the flight-distance :math:`\chi^2`;
        - ``vertex_chi2``, ``doca`` (mm), ``mcorr`` (corrected mass, GeV);
        - ``pt``: candidate :math:`p_T`, GeV.

        Then come the measured flight distance and the truth:

        - ``fd``: measured flight distance, mm;
        - ``label``: int64, 1 for ``b`` and 0 otherwise;
        - ``category``: categorical, one of ``b``, ``charm``, ``prompt``, ``fake``;
        - ``decay_time``: true proper decay time in ps for ``b`` and ``charm``,
          NaN otherwise;
        - ``true_fd``: true flight distance in mm, zero for ``prompt`` and NaN
          for ``fake``.

    Raises
    ------
    DataError
        If ``n`` is not a positive integer, a fraction is out of range, a physics
        setting is not positive and finite, or ``seed`` is not a non-negative
        integer or generator.

    Examples
    --------
    >>> from lipmono.datasets import make_trigger_candidates
    >>> frame = make_trigger_candidates(1000, seed=0)
    >>> frame.shape
    (1000, 13)
    >>> float(frame.label.mean())
    0.2
    """
    import pandas as pd

    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise DataError(f"n must be a positive integer, got {n!r}")
    signal_fraction = _check_fraction(signal_fraction, "signal_fraction", allow_zero=False)
    charm_fraction = _check_fraction(charm_fraction, "charm_fraction")
    fake_fraction = _check_fraction(fake_fraction, "fake_fraction")
    if charm_fraction + fake_fraction >= 1:
        raise DataError(
            f"charm_fraction + fake_fraction = {charm_fraction + fake_fraction:g} must be below 1, "
            "so that some background is prompt"
        )
    settings = dict(
        b_lifetime=_check_positive(b_lifetime, "b_lifetime"),
        b_pt_mean=_check_positive(b_pt_mean, "b_pt_mean"),
    )
    rng = _make_rng(seed)

    n = int(n)
    n_signal = round(n * signal_fraction)
    n_background = n - n_signal
    n_charm = round(n_background * charm_fraction)
    n_fake = round(n_background * fake_fraction)
    counts = {"b": n_signal, "charm": n_charm, "prompt": n_background - n_charm - n_fake,
              "fake": n_fake}

    parts = []
    for category, count in counts.items():
        if count == 0:
            continue
        columns = _generate_selected(rng, category, count, **settings)
        columns["category"] = np.full(count, list(counts).index(category), dtype=np.int8)
        parts.append(columns)
    data = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    for name in ("log_min_ip_chi2", "log_fd_chi2"):
        # A chi2 of exactly zero has probability zero, but log(0) must not reach a model.
        data[name] = np.maximum(data[name], np.log(np.finfo(np.float64).tiny))

    frame = pd.DataFrame({name: data[name] for name in (*FEATURES, "fd")})
    frame["label"] = (data["category"] == 0).astype(np.int64)
    frame["category"] = pd.Categorical.from_codes(data["category"], categories=list(counts))
    frame["decay_time"] = data["decay_time"]
    frame["true_fd"] = data["true_fd"]
    if shuffle:
        frame = frame.iloc[rng.permutation(n)].reset_index(drop=True)
    logger.debug("simulated %d trigger candidates: %s", n, counts)
    return frame

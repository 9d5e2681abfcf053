"""Certified radii: exact for linear models, never broken by attacks on networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

from lipmono import LipschitzMLP, MonotonicMLP, lipschitz_bound
from lipmono.audit import certified_radius, module_radius
from lipmono.errors import CertificateError


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The networks here are tiny: extra threads only add synchronisation overhead.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


INPUT_NORM = {"l1": 1, "l2": 2, "linf": float("inf")}
# The Lipschitz constant of x -> w.x in an input norm is the dual norm of w.
DUAL_NORM = {"l1": float("inf"), "l2": 2, "linf": 1}


def steepest_step(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Return, per row, the unit vector in ``norm`` that increases a function with this gradient
    the most."""
    if norm == "l1":
        step = torch.zeros_like(grad)
        column = grad.abs().argmax(dim=1, keepdim=True)
        step.scatter_(1, column, torch.sign(grad.gather(1, column)))
        return step
    if norm == "l2":
        return grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-300)
    return torch.sign(grad)


def attack(module: nn.Module, x: torch.Tensor, budget: torch.Tensor, norm: str, n_steps=10):
    """Spend ``budget`` (per row, in ``norm``) in ``n_steps`` steepest steps toward logit 0.

    Each step moves ``budget / n_steps`` along the unit direction that shrinks
    ``|logit|`` fastest to first order. By the triangle inequality the total
    perturbation's norm is at most ``budget``.
    """
    sign = torch.sign(module(x).reshape(-1)).detach()
    z = x.clone()
    for _ in range(n_steps):
        z.requires_grad_(True)
        (grad,) = torch.autograd.grad(module(z).sum(), z)
        direction = steepest_step(-sign[:, None] * grad, norm)
        z = (z + (budget / n_steps)[:, None] * direction).detach()
    return z


@settings(max_examples=40, deadline=None)
@given(
    n_features=st.integers(1, 8),
    norm=st.sampled_from(["l1", "l2", "linf"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_linear_radius_exact(n_features, norm, seed):
    torch.manual_seed(seed)
    layer = nn.Linear(n_features, 1).double()
    module = nn.Sequential(layer)
    x = torch.randn(32, n_features, dtype=torch.float64)
    radius = torch.as_tensor(module_radius(module, x.numpy(), norm))
    logit = module(x).reshape(-1).detach()
    w = layer.weight.detach()[0]
    # For a linear map the steepest unit direction is the same everywhere, so one step
    # of size r moves the logit by exactly L * r, and the radius |z| / L is exact.
    dual = float(torch.linalg.vector_norm(w, ord=DUAL_NORM[norm]))
    assert lipschitz_bound(module, norm) == pytest.approx(dual, rel=1e-12)
    keep = logit.abs() > 1e-6
    inside = attack(module, x, radius * (1 - 1e-6), norm, n_steps=1)
    outside = attack(module, x, radius * (1 + 1e-6), norm, n_steps=1)
    delta_norm = torch.linalg.vector_norm(outside - x, ord=INPUT_NORM[norm], dim=1)
    assert torch.allclose(delta_norm, radius * (1 + 1e-6), rtol=1e-9)
    after_inside = module(inside).reshape(-1).detach()
    after_outside = module(outside).reshape(-1).detach()
    assert torch.all(torch.sign(after_inside[keep]) == torch.sign(logit[keep]))
    assert torch.all(torch.sign(after_outside[keep]) == -torch.sign(logit[keep]))


@settings(max_examples=16, deadline=None)
@given(
    n_features=st.integers(2, 6),
    norm=st.sampled_from(["l1", "l2", "linf"]),
    seed=st.integers(0, 2**31 - 1),
    monotonic=st.booleans(),
)
def test_network_attack_inside_radius_never_flips(n_features, norm, seed, monotonic):
    torch.manual_seed(seed)
    if monotonic and norm == "l1":
        cst = torch.randint(-1, 2, (n_features,)).tolist()
        module = MonotonicMLP(n_features, [16, 16], monotonic_cst=cst, lipschitz=2.0)
    else:
        module = LipschitzMLP(n_features, [16, 16], lipschitz=2.0, norm=norm, always_normalize=True)
    module = module.double().eval().requires_grad_(False)
    x = torch.randn(64, n_features, dtype=torch.float64)
    bound = lipschitz_bound(module, norm)
    radius = torch.as_tensor(module_radius(module, x.numpy(), norm))
    logit = module(x).reshape(-1)
    for fraction in (0.5, 0.999, 3.0):
        # Weights are frozen, so the normalized weights can be computed once.
        with parametrize.cached():
            z = attack(module, x, radius * fraction, norm)
            after = module(z).reshape(-1)
        moved = torch.linalg.vector_norm(z - x, ord=INPUT_NORM[norm], dim=1)
        assert torch.all(moved <= radius * fraction * (1 + 1e-9))
        # The certificate bounds how much any perturbation can shrink the margin.
        assert torch.all(after.abs() >= logit.abs() - bound * moved - 1e-9)
        if fraction < 1:
            assert torch.all(torch.sign(after) == torch.sign(logit))


def test_certified_radius_rejects_bad_bound():
    with pytest.raises(CertificateError, match="lipschitz=0.0 must be positive"):
        certified_radius(np.ones(3), 0.0)
    with pytest.raises(CertificateError, match="lipschitz=nan must be positive"):
        certified_radius(np.ones(3), float("nan"))


def test_certified_radius_exact_values():
    radius = certified_radius([-2.0, 0.0, 3.0], 4.0)
    assert radius.tolist() == [0.5, 0.0, 0.75]

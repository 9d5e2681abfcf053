"""Property tests over random shapes, weights, budgets, chains and constraints.

Tolerances derive from the dtype. A norm may exceed its budget by at most
``50 * eps`` relative. A one-feature sweep may step the wrong way by at most
``64 * eps * (1 + max |f|)``: where ``g`` is saturated the residual cancels its
slope exactly, and only rounding is left.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lipmono
from lipmono import functional as F_lip

DTYPES = st.sampled_from([torch.float32, torch.float64])
CHAINS = st.sampled_from(["l1", "linf", "l2", "l1->l1"])


def eps(dtype):
    return torch.finfo(dtype).eps


def scale_up(model, factor):
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, lipmono.LipschitzLinear):
                layer.raw_weight.mul_(factor)
    return model


@settings(deadline=None, max_examples=200)
@given(
    out_features=st.integers(1, 16),
    in_features=st.integers(1, 16),
    norm=st.sampled_from(F_lip.NORMS),
    log_scale=st.floats(-1, 3),
    budget=st.floats(0.05, 20),
    always=st.booleans(),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_layer_norm_within_budget(
    out_features, in_features, norm, log_scale, budget, always, dtype, seed
):
    torch.manual_seed(seed)
    layer = lipmono.LipschitzLinear(
        in_features, out_features, lipschitz=budget, norm=norm, always_normalize=always,
        dtype=dtype,
    )
    scale_up(layer, 10**log_scale)
    W_eff = layer.eval().effective_weight()
    value = F_lip.operator_norm(W_eff.double(), norm).item()
    assert value <= budget * (1 + 50 * eps(dtype))
    if always:
        assert value >= budget * (1 - 50 * eps(dtype))
    with torch.no_grad():
        # The weight the forward pass uses in eval mode is the certified one.
        assert torch.equal(layer.weight, W_eff)


@settings(deadline=None, max_examples=60)
@given(
    in_features=st.integers(1, 5),
    hidden=st.lists(st.sampled_from([2, 4, 6, 8]), min_size=1, max_size=3),
    out_features=st.integers(1, 3),
    chain=CHAINS,
    lipschitz=st.floats(0.2, 5),
    log_scale=st.floats(0, 2),
    monotonic=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_empirical_within_certified(
    in_features, hidden, out_features, chain, lipschitz, log_scale, monotonic, seed
):
    torch.manual_seed(seed)
    model = lipmono.LipschitzMLP(
        in_features, hidden, out_features, lipschitz=lipschitz, norm=chain
    ).double()
    scale_up(model, 10**log_scale)
    certified = lipmono.lipschitz_bound(model, chain)
    n_layers = len(hidden) + 1
    assert certified <= lipschitz * (1 + 50 * n_layers * eps(torch.float64))
    if monotonic:
        generator = torch.Generator().manual_seed(seed)
        cst = torch.randint(-1, 2, (in_features, out_features), generator=generator)
        model = lipmono.MonotonicResidual(model, cst, lipschitz)
        certified = lipmono.lipschitz_bound(model, chain)
    X = torch.randn(32, in_features, dtype=torch.float64)
    empirical = lipmono.empirical_lipschitz(model, X, chain, n_steps=15, max_points=32)
    assert 0 < empirical <= certified * (1 + 1e-9)


def sweep_steps(model, cst, dtype, seed, n_base=6, n_grid=48):
    """Return ``sign * diff`` along a grid of each constrained feature, and a scale.

    Every other feature is held at one of ``n_base`` random values.
    """
    generator = torch.Generator().manual_seed(seed)
    n_in, n_out = cst.shape
    base = (torch.rand(n_base, n_in, generator=generator, dtype=dtype) * 4 - 2)
    grid = torch.linspace(-3, 3, n_grid, dtype=dtype)
    steps, scale = [], 1.0
    for i in range(n_in):
        if not bool(cst[i].any()):
            continue
        X = base.repeat_interleave(n_grid, dim=0)
        X[:, i] = grid.repeat(n_base)
        with torch.no_grad():
            y = model(X).reshape(n_base, n_grid, n_out)
        scale = max(scale, float(y.abs().max()))
        steps.append(y.diff(dim=1) * cst[i].to(dtype))
    return torch.cat([s.flatten() for s in steps]), scale


def assert_monotonic(model, dtype, seed):
    cst = model.monotonic_cst
    if not bool(cst.any()):
        return
    steps, scale = sweep_steps(model.eval(), cst, dtype, seed)
    tolerance = 64 * eps(dtype) * (1 + scale)
    assert float(steps.min()) >= -tolerance


@settings(deadline=None, max_examples=150)
@given(
    data=st.data(),
    in_features=st.integers(1, 5),
    hidden=st.lists(st.sampled_from([2, 4, 8]), min_size=1, max_size=3),
    out_features=st.integers(1, 2),
    chain=CHAINS,
    lipschitz=st.floats(0.1, 5),
    log_scale=st.floats(0, 3),
    always=st.booleans(),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_sweeps_never_go_wrong_way(
    data, in_features, hidden, out_features, chain, lipschitz, log_scale, always, dtype, seed
):
    cst = data.draw(
        st.lists(
            st.lists(st.sampled_from([-1, 0, 1]), min_size=out_features, max_size=out_features),
            min_size=in_features, max_size=in_features,
        )
    )
    torch.manual_seed(seed)
    model = lipmono.MonotonicMLP(
        in_features, hidden, out_features, monotonic_cst=cst, lipschitz=lipschitz,
        norm=chain, always_normalize=always,
    ).to(dtype)
    scale_up(model, 10**log_scale)
    assert_monotonic(model, dtype, seed)


def adversarial_fit(cst, dtype, chain, out_features=1, steps=200, lr=0.05):
    """Fit targets that move against every constraint; return the model and the losses."""
    torch.manual_seed(0)
    model = lipmono.MonotonicMLP(
        3, [16, 16], out_features, monotonic_cst=cst, lipschitz=2.0, norm=chain
    ).to(dtype)
    X = torch.rand(256, 3, dtype=dtype) * 4 - 2
    # y = -sin(3 x) in an increasing feature is decreasing over a third of each period.
    against = -torch.sin(3 * X) * torch.as_tensor(cst, dtype=dtype).reshape(3, -1).T[:, None, :]
    y = 5 * against.sum(dim=-1).T
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chain", ["l1", "l2"])
def test_monotonic_after_adversarial_training(dtype, chain):
    model, losses = adversarial_fit([1, -1, 0], dtype, chain)
    assert losses[-1] < losses[0]  # training did move the weights
    for seed in range(3):
        assert_monotonic(model, dtype, seed)


def test_vector_output_monotonic_after_adversarial_training():
    cst = [[1, -1], [0, 1], [-1, 0]]
    model, losses = adversarial_fit(cst, torch.float32, "l1", out_features=2)
    assert losses[-1] < losses[0]
    assert_monotonic(model, torch.float32, seed=0)


def separated_weight(out_features, in_features, seed):
    """Return a float64 weight with no ties among row maxima, partly over budget 1."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randperm(out_features * in_features, generator=generator).double() + 1
    signs = torch.randint(0, 2, values.shape, generator=generator).double() * 2 - 1
    W = (values * signs / (out_features * in_features)).reshape(out_features, in_features)
    # Rows with alternating scales: some over and some under budget.
    factors = torch.tensor([3.0, 0.2] * out_features, dtype=torch.float64)[:out_features]
    return (W * factors[:, None]).requires_grad_(True)


@pytest.mark.parametrize("norm", F_lip.NORMS)
@pytest.mark.parametrize("always", [False, True])
def test_gradcheck_normalization(norm, always):
    W = separated_weight(4, 3, seed=1)
    normalization = lipmono.LipschitzNormalization(4, 3, norm=norm, lipschitz=1.0, always=always)
    normalization.double()
    assert torch.autograd.gradcheck(lambda w: normalization.normalize(w, exact=True), (W,))


def test_sweep_detects_weak_residual():
    # Negative control: with the residual's weight cut below g's bound after the
    # check, the same sweep finds steps that go the wrong way.
    model, _ = adversarial_fit([1, -1, 0], torch.float64, "l1")
    model.lipschitz = 0.05
    steps, _ = sweep_steps(model.eval(), model.monotonic_cst, torch.float64, seed=0)
    assert float(steps.min()) < -1e-3

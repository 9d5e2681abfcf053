"""lipschitz_bound and empirical_lipschitz: certificates from the actual weights."""

import pytest
import torch
from torch import nn

import lipmono
from lipmono import functional as F_lip
from lipmono.errors import CertificateError


def product_of_layer_norms(model):
    bound = 1.0
    for layer in model.modules():
        if isinstance(layer, lipmono.LipschitzLinear):
            bound *= F_lip.operator_norm(layer.effective_weight().double(), layer.norm).item()
    return bound


def test_bound_from_weights_not_budget():
    torch.manual_seed(0)
    model = lipmono.LipschitzMLP(3, [8, 8], lipschitz=4.0)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, lipmono.LipschitzLinear):
                layer.raw_weight.mul_(0.01)  # far under budget: no rescale happens
    bound = lipmono.lipschitz_bound(model)
    assert bound < 0.01
    assert bound == pytest.approx(product_of_layer_norms(model), rel=1e-12)


def test_plain_linear_with_big_weights_exceeds_budget():
    torch.manual_seed(0)
    model = nn.Sequential(
        lipmono.LipschitzLinear(3, 8, lipschitz=1.0, norm="l1->linf"),
        lipmono.GroupSort(),
        nn.Linear(8, 1),
    )
    with torch.no_grad():
        model[0].raw_weight.mul_(10)
        model[2].weight.fill_(5.0)
    bound = lipmono.lipschitz_bound(model)
    # Layer 0 is at 1 (l1->linf), the plain layer's row sum is 8 * 5 = 40.
    assert bound == pytest.approx(40.0, rel=1e-6)
    X = torch.randn(64, 3)
    empirical = lipmono.empirical_lipschitz(model, X, n_steps=20)
    assert 1.0 < empirical <= bound * (1 + 1e-5)


def test_broken_normalization_shows_in_bound(monkeypatch):
    torch.manual_seed(0)
    model = lipmono.LipschitzMLP(3, [8, 8], lipschitz=1.0)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, lipmono.LipschitzLinear):
                layer.raw_weight.mul_(10)
    assert lipmono.lipschitz_bound(model) <= 1.0 + 1e-6
    monkeypatch.setattr(F_lip, "rescale", lambda W, unit, budget, always=False: W)
    assert lipmono.lipschitz_bound(model) > 10.0


def test_monotonic_bound_adds_residual():
    torch.manual_seed(0)
    model = lipmono.MonotonicMLP(4, [8], monotonic_cst=[1, 0, -1, 0], lipschitz=2.0)
    inner = lipmono.lipschitz_bound(model.inner)
    # In l1 -> linf the linear term 2 * S has norm max |2 s_i| = 2.
    assert lipmono.lipschitz_bound(model) == pytest.approx(inner + 2.0, rel=1e-12)
    # In l2 -> l2 it has norm 2 * sqrt(2) (two constrained inputs).
    inner_l2 = lipmono.lipschitz_bound(model.inner, "l2")
    assert lipmono.lipschitz_bound(model, "l2") == pytest.approx(
        inner_l2 + 2.0 * 2**0.5, rel=1e-12
    )


def test_affine_maps_scale_bound():
    torch.manual_seed(0)
    model = lipmono.MonotonicMLP(3, [8], monotonic_cst=[1, 0, 0], lipschitz=1.0)
    wrapped = nn.Sequential(
        lipmono.Standardize(mean=[0.0, 1.0, 2.0], scale=[0.5, 2.0, 4.0]),
        model,
        lipmono.OutputAffine(scale=[3.0], shift=[1.0]),
    )
    # diag(1/scale) has norm 2, the output scale multiplies by 3.
    expected = 2.0 * 3.0 * lipmono.lipschitz_bound(model)
    assert lipmono.lipschitz_bound(wrapped) == pytest.approx(expected, rel=1e-12)


def test_unknown_module_rejected():
    model = nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=-1))
    with pytest.raises(CertificateError, match=r"cannot certify a module of type Softmax"):
        lipmono.lipschitz_bound(model)


def test_module_without_dense_layer_rejected():
    with pytest.raises(CertificateError, match=r"GroupSort has no dense layer to certify"):
        lipmono.lipschitz_bound(lipmono.GroupSort())


def test_unknown_chain_rejected():
    with pytest.raises(ValueError, match=r"norm='l3' is not a supported chain"):
        lipmono.lipschitz_bound(lipmono.LipschitzMLP(3, [4]), norm="l3")


def test_l2_bound_uses_exact_norm():
    torch.manual_seed(0)
    layer = lipmono.LipschitzLinear(6, 4, lipschitz=1.0, norm="l2->l2", dtype=torch.float64)
    with torch.no_grad():
        layer.raw_weight.mul_(10)
        layer.normalization.u.fill_(0.5)  # a poor power-iteration start
        layer(torch.randn(2, 6, dtype=torch.float64))  # one training-mode estimate
    model = nn.Sequential(layer)
    assert lipmono.lipschitz_bound(model, "l2") == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("norm", F_lip.NORMS)
def test_empirical_tight_for_single_layer(norm):
    # A linear map has a constant Jacobian, so the empirical search finds the exact norm.
    torch.manual_seed(0)
    layer = lipmono.LipschitzLinear(5, 3, lipschitz=2.0, norm=norm).double()
    chain = {"l1->linf": "l1", "linf->linf": "linf", "l2->l2": "l2", "l1->l1": "l1->l1"}[norm]
    X = torch.randn(16, 5, dtype=torch.float64)
    empirical = lipmono.empirical_lipschitz(layer, X, chain, n_steps=5)
    assert empirical == pytest.approx(lipmono.lipschitz_bound(layer, chain), rel=1e-9)


def test_empirical_restores_training_mode():
    model = lipmono.MonotonicMLP(3, [4], monotonic_cst=[1, 0, 0])
    model.train()
    model.inner.net[0].eval()
    lipmono.empirical_lipschitz(model, torch.randn(8, 3), n_steps=2)
    assert model.training
    assert not model.inner.net[0].training
    assert model.inner.net[2].training

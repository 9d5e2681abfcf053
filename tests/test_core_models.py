"""LipschitzMLP, MonotonicResidual and MonotonicMLP: chains, budgets, constraints, state."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import lipmono
from lipmono.errors import BudgetError, CertificateError, ConstraintError


def dense_layers(model):
    return [m for m in model.modules() if isinstance(m, lipmono.LipschitzLinear)]


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ("l1", ["l1->linf", "linf->linf", "linf->linf"]),
        ("linf", ["linf->linf"] * 3),
        ("l2", ["l2->l2"] * 3),
        ("l1->l1", ["l1->l1"] * 3),
    ],
)
def test_chain_layer_norms(chain, expected):
    model = lipmono.LipschitzMLP(3, [4, 4], lipschitz=8.0, norm=chain)
    assert [layer.norm for layer in dense_layers(model)] == expected


def test_budget_split_evenly():
    model = lipmono.LipschitzMLP(3, [4, 4], lipschitz=8.0)
    budgets = [layer.lipschitz for layer in dense_layers(model)]
    assert budgets == pytest.approx([2.0, 2.0, 2.0], rel=1e-12)
    assert model.layer_lipschitz == budgets


def test_explicit_layer_budgets_kept():
    model = lipmono.LipschitzMLP(3, [4], lipschitz=6.0, layer_lipschitz=[2.0, 3.0])
    assert [layer.lipschitz for layer in dense_layers(model)] == [2.0, 3.0]


def test_layer_budgets_with_wrong_product_rejected():
    with pytest.raises(BudgetError, match=r"multiplies to 4, not lipschitz=6"):
        lipmono.LipschitzMLP(3, [4], lipschitz=6.0, layer_lipschitz=[2.0, 2.0])


def test_layer_budgets_with_wrong_count_rejected():
    with pytest.raises(BudgetError, match=r"has 1 entries but the network has 2 dense layers"):
        lipmono.LipschitzMLP(3, [4], lipschitz=2.0, layer_lipschitz=[2.0])


def test_hidden_size_not_divisible_rejected():
    with pytest.raises(ValueError, match=r"hidden_sizes\[1\]=6 is not divisible by group_size=4"):
        lipmono.LipschitzMLP(3, [8, 6], group_size=4)


def test_unknown_chain_rejected():
    with pytest.raises(ValueError, match=r"norm='l3' is not a supported chain"):
        lipmono.LipschitzMLP(3, [4], norm="l3")


FEATURES = ["age", "income", "debt"]


@pytest.mark.parametrize(
    "cst",
    [
        [1, 0, -1],
        np.array([1, 0, -1]),
        np.array([1.0, 0.0, -1.0]),
        torch.tensor([1, 0, -1]),
        ["increasing", "none", "decreasing"],
        {"age": 1, "debt": "decreasing"},
        {0: "increasing", 2: -1},
    ],
)
def test_constraint_forms_agree(cst):
    model = lipmono.MonotonicMLP(3, [4], monotonic_cst=cst, feature_names=FEATURES)
    assert model.monotonic_cst.flatten().tolist() == [1.0, 0.0, -1.0]


def test_constraint_string_applies_to_all():
    model = lipmono.MonotonicMLP(3, [4], monotonic_cst="decreasing")
    assert model.monotonic_cst.flatten().tolist() == [-1.0, -1.0, -1.0]


def test_constraint_matrix_for_vector_output():
    cst = np.array([[1, -1], [0, 1], [-1, 0]])
    model = lipmono.MonotonicMLP(3, [4], 2, monotonic_cst=cst)
    assert model.monotonic_cst.tolist() == cst.tolist()
    assert model(torch.randn(5, 3)).shape == (5, 2)


@pytest.mark.parametrize(
    ("cst", "kwargs", "match"),
    [
        ([1, 2, 0], {}, r"invalid monotonic constraint 2 for input 1"),
        ([1, 0], {}, r"one entry per input \(3\), got shape \(2,\)"),
        ({"salary": 1}, {"feature_names": FEATURES}, r"'salary', which is not among the 3"),
        ({"age": 1}, {}, r"names the feature 'age', but no feature names are known"),
        ({5: 1}, {}, r"position 5, outside 0\.\.2"),
        ("sideways", {}, r"invalid monotonic constraint 'sideways' for every feature"),
        (np.ones((3, 3)), {}, r"must have shape \(3, 1\), got \(3, 3\)"),
    ],
)
def test_bad_constraints_rejected(cst, kwargs, match):
    with pytest.raises(ConstraintError, match=match):
        lipmono.MonotonicMLP(3, [4], monotonic_cst=cst, **kwargs)


def test_residual_over_budget_rejected():
    inner = lipmono.LipschitzMLP(3, [4], lipschitz=3.0)
    with pytest.raises(CertificateError, match=r"budgets multiply to 3 \(l1->linf\), more than"):
        lipmono.MonotonicResidual(inner, [1, 0, 0], lipschitz=2.0)


def test_residual_around_plain_linear_rejected():
    inner = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(CertificateError, match=r"a Linear layer has no budget"):
        lipmono.MonotonicResidual(inner, [1, 0, 0], lipschitz=2.0)


def test_residual_with_disconnected_norms_rejected():
    inner = nn.Sequential(
        lipmono.LipschitzLinear(3, 4, norm="l2->l2"), lipmono.GroupSort(),
        lipmono.LipschitzLinear(4, 1, norm="linf->linf"),
    )
    with pytest.raises(CertificateError, match=r"the norms must connect to form a chain"):
        lipmono.MonotonicResidual(inner, [1, 0, 0], lipschitz=2.0)


def test_residual_under_budget_accepted():
    inner = lipmono.LipschitzMLP(3, [4], lipschitz=1.5)
    model = lipmono.MonotonicResidual(inner, [1, 0, 0], lipschitz=2.0)
    assert model.residual_matrix().flatten().tolist() == [2.0, 0.0, 0.0]


def test_leading_batch_dims():
    torch.manual_seed(0)
    model = lipmono.MonotonicMLP(3, [4, 4], 2, monotonic_cst=[1, 0, -1]).eval()
    x = torch.randn(2, 5, 3)
    y = model(x)
    assert y.shape == (2, 5, 2)
    torch.testing.assert_close(y.reshape(-1, 2), model(x.reshape(-1, 3)))


def saturated_model(chain, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = lipmono.MonotonicMLP(
        4, [8, 8], monotonic_cst=[1, 0, -1, 0], lipschitz=1.5, norm=chain
    ).to(dtype)
    with torch.no_grad():
        for layer in dense_layers(model):
            layer.raw_weight.mul_(10)
    return model


@pytest.mark.parametrize("chain", ["l1", "linf", "l2", "l1->l1"])
def test_state_dict_round_trip_identical(chain):
    source = saturated_model(chain, seed=0)
    x = torch.randn(32, 4)
    for _ in range(3):
        source(x)  # moves the power-iteration buffers of the l2 chain
    target = saturated_model(chain, seed=1)
    target.load_state_dict(source.state_dict())
    for mode in (True, False):
        source.train(mode)
        target.train(mode)
        with torch.no_grad():
            assert torch.equal(target(x), source(x))


@pytest.mark.parametrize("chain", ["l1", "linf", "l1->l1"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_train_and_eval_identical_for_exact_norms(chain, dtype):
    # These norms are computed exactly in both modes, so outputs agree bitwise,
    # in eval mode with gradients, without them, and under inference_mode.
    model = saturated_model(chain, dtype=dtype)
    x = torch.randn(32, 4, dtype=dtype)
    train_out = model.train()(x)
    model.eval()
    eval_grad = model(x)
    with torch.no_grad():
        eval_no_grad = model(x)
    with torch.inference_mode():
        eval_inference = model(x)
    assert torch.equal(train_out, eval_grad)
    assert torch.equal(train_out, eval_no_grad)
    assert torch.equal(train_out, eval_inference)


def test_l2_train_eval_close_after_iteration():
    # Train mode uses the power-iteration estimate of the spectral norm; eval mode
    # uses the exact value. After enough training-mode passes the estimate has
    # converged and the outputs agree to float64 rounding of the two methods.
    model = saturated_model("l2", dtype=torch.float64)
    x = torch.randn(32, 4, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(300):
            train_out = model.train()(x)
        eval_out = model.eval()(x)
    torch.testing.assert_close(train_out, eval_out, rtol=1e-9, atol=1e-12)


def test_l2_power_iteration_estimate_from_below():
    layer = lipmono.LipschitzLinear(6, 5, lipschitz=1.0, norm="l2->l2")
    W = layer.raw_weight.detach()
    exact = torch.linalg.matrix_norm(W, ord=2)
    estimates = []
    with torch.no_grad():
        for _ in range(30):
            estimates.append(float(layer.normalization.unit_norms(W, exact=False)))
    assert all(e <= float(exact) * (1 + 1e-6) for e in estimates)
    assert estimates[-1] == pytest.approx(float(exact), rel=1e-4)


def test_default_budget_product_is_lipschitz():
    model = lipmono.LipschitzMLP(3, [4, 4, 4], lipschitz=5.0)
    assert math.prod(model.layer_lipschitz) == pytest.approx(5.0, rel=1e-12)

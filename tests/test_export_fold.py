"""Folding: plain layers with the same outputs, scriptable and exportable."""

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import lipmono
from lipmono.export import ExportError, FoldedNetwork, fold, folded_bound
from lipmono.export.tolerance import rounding_tolerance


def _wrapped(core, n_features, seed=0, n_outputs=1):
    rng = np.random.default_rng(seed)
    mean, scale = rng.normal(size=n_features), rng.uniform(0.2, 3.0, n_features)
    standardize = lipmono.Standardize(mean, scale)
    output = lipmono.OutputAffine(rng.uniform(0.5, 2.0, n_outputs), rng.normal(size=n_outputs))
    return nn.Sequential(standardize, core, output).eval()


def _randomize(module, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return module


@settings(max_examples=25, deadline=None)
@given(
    n_features=st.integers(1, 6),
    hidden=st.lists(st.sampled_from([4, 8, 12]), min_size=1, max_size=3),
    n_outputs=st.integers(1, 2),
    group_size=st.sampled_from([1, 2, 4]),
    norm=st.sampled_from(["l1", "linf", "l2", "l1->l1"]),
    wrap=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fold_matches_float64_original(
    n_features, hidden, n_outputs, group_size, norm, wrap, bias, seed
):
    signs = np.random.default_rng(seed).integers(-1, 2, size=(n_features, n_outputs))
    core = lipmono.MonotonicMLP(
        n_features, hidden, n_outputs, monotonic_cst=signs, lipschitz=1.5, norm=norm,
        group_size=group_size, bias=bias,
    )
    _randomize(core, seed)
    model = _wrapped(core, n_features, seed, n_outputs) if wrap else core.eval()
    folded = fold(model)
    x = torch.randn(64, n_features, generator=torch.Generator().manual_seed(seed)) * 3

    reference = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        expected = reference(x.double())
        folded64 = fold(reference)
        assert torch.allclose(
            folded64(x.double()), expected, rtol=0,
            atol=float(rounding_tolerance(folded64, x, torch.float64).max()),
        )
        difference = (folded(x).double() - expected).abs()
    assert folded(x).dtype == torch.float32
    assert bool((difference <= rounding_tolerance(folded, x)).all())


def test_fold_lipschitz_mlp_bitwise_equal():
    model = _randomize(lipmono.LipschitzMLP(5, [16, 16], 2, lipschitz=2.0), 1).eval()
    x = torch.randn(200, 5)
    with torch.no_grad():
        assert torch.equal(fold(model)(x), model(x))


def test_fold_has_only_plain_layers():
    model = _wrapped(lipmono.MonotonicMLP(4, [8, 8], monotonic_cst=[1, 0, -1, 0]), 4)
    folded = fold(model)
    kinds = {type(m) for m in folded.modules()} - {FoldedNetwork, nn.Sequential}
    assert kinds == {nn.Linear, lipmono.GroupSort}
    assert not any(hasattr(m, "parametrizations") for m in folded.modules())
    assert not any(p.requires_grad for p in folded.parameters())
    assert not folded.training
    assert folded.skip is not None and folded.skip.bias is None


def test_fold_scripts_and_exports():
    model = _wrapped(lipmono.MonotonicMLP(4, [8, 8], monotonic_cst=[1, 0, -1, 0], group_size=4), 4)
    folded = fold(model)
    x = torch.randn(32, 4)
    with torch.no_grad():
        expected = folded(x)
        scripted = torch.jit.script(folded)
        assert torch.equal(scripted(x), expected)
        program = torch.export.export(folded, (x,))
        assert torch.allclose(program.module()(x), expected, rtol=0, atol=1e-6)
        traced = torch.jit.trace(folded, x[:2])
        assert torch.equal(traced(x), expected)


def test_fold_relu_sequential_residual():
    inner = nn.Sequential(
        lipmono.LipschitzLinear(3, 6, norm="l1->linf"), nn.ReLU(), nn.Identity(),
        lipmono.LipschitzLinear(6, 1, norm="linf->linf"),
    )
    core = lipmono.MonotonicResidual(inner, [1, -1, 0], lipschitz=1.0).eval()
    x = torch.randn(50, 3)
    with torch.no_grad():
        assert torch.allclose(fold(core)(x), core(x), rtol=0, atol=1e-6)


def test_folded_bound_equals_certificate_without_affine():
    core = _randomize(lipmono.MonotonicMLP(5, [8, 8], monotonic_cst=[1] * 5, lipschitz=2.0), 3)
    core.eval()
    assert folded_bound(fold(core), "l1") == pytest.approx(lipmono.lipschitz_bound(core, "l1"))


def test_folded_bound_covers_steepest_partial():
    # The l1 chain bounds every partial derivative in the original units.
    model = _wrapped(_randomize(lipmono.MonotonicMLP(4, [8], monotonic_cst=[1, 0, 0, 1]), 4), 4)
    bound = folded_bound(fold(model), "l1")
    x = torch.randn(256, 4, requires_grad=True)
    (gradient,) = torch.autograd.grad(model(x).sum(), x)
    assert float(gradient.abs().max()) <= bound * (1 + 1e-6)


def test_fold_rejects_unknown_layer():
    inner = nn.Sequential(lipmono.LipschitzLinear(3, 4), nn.Tanh(), lipmono.LipschitzLinear(4, 1))
    with pytest.raises(ExportError, match="cannot fold a module of type Tanh"):
        fold(inner)


def test_fold_rejects_training_dropout():
    inner = nn.Sequential(lipmono.LipschitzLinear(3, 4), nn.Dropout(0.1), nn.Linear(4, 1))
    with pytest.raises(ExportError, match="training mode; call model.eval"):
        fold(inner.train())


def test_fold_rejects_trailing_activation_with_affine():
    inner = nn.Sequential(lipmono.LipschitzLinear(3, 4), nn.ReLU())
    model = nn.Sequential(inner, lipmono.OutputAffine([2.0] * 4, [0.0] * 4))
    with pytest.raises(ExportError, match="ends with an activation"):
        fold(model)


def test_fold_rejects_nonfinite_weight():
    model = lipmono.LipschitzMLP(3, [4], 1).eval()
    with torch.no_grad():
        model.net[0].bias[1] = float("nan")
    with pytest.raises(ExportError, match=r"layer 0 bias contains non-finite values"):
        fold(model)


def test_fold_rejects_extra_modules_between_affine_maps():
    model = nn.Sequential(
        lipmono.Standardize([0.0], [1.0]), lipmono.LipschitzMLP(1, [4]), nn.ReLU(),
    )
    with pytest.raises(ExportError, match="2 modules between the affine maps"):
        fold(model)


def test_export_modules_define_all():
    import importlib

    for name in ["cbuild", "c", "fold", "metadata", "numpy", "onnx", "plan", "tolerance"]:
        module = importlib.import_module(f"lipmono.export.{name}")
        for item in module.__all__:
            assert hasattr(module, item), f"lipmono.export.{name}.{item}"
    for module_name in ["lipmono.export", "lipmono.numpy_inference", "lipmono.cli.export"]:
        module = importlib.import_module(module_name)
        for item in module.__all__:
            assert hasattr(module, item), f"{module_name}.{item}"

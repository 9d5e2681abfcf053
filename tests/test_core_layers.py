"""LipschitzLinear: exact cases, gradients, eval cache, shapes and compilers."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import lipmono
from lipmono import functional as F_lip
from lipmono.errors import BudgetError

# W = [[3, -4], [1, 2]]: row maxima (4, 2), row abs-sums (7, 3), column abs-sums
# (4, 6); W^T W = [[10, -10], [-10, 20]] has eigenvalues 15 +- 5 sqrt(5).
W_EXAMPLE = torch.tensor([[3.0, -4.0], [1.0, 2.0]], dtype=torch.float64)
SIGMA_EXAMPLE = math.sqrt(15 + 5 * math.sqrt(5))


def layer_with_weight(W, **kwargs):
    layer = lipmono.LipschitzLinear(W.shape[1], W.shape[0], dtype=W.dtype, **kwargs)
    with torch.no_grad():
        layer.raw_weight.copy_(W)
    return layer


@pytest.mark.parametrize(
    ("norm", "expected"),
    [("l1->linf", 4.0), ("linf->linf", 7.0), ("l1->l1", 6.0), ("l2->l2", SIGMA_EXAMPLE)],
)
def test_operator_norm_known_values(norm, expected):
    assert F_lip.operator_norm(W_EXAMPLE, norm).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("norm", "budget", "expected"),
    [
        # Row 0 (max 4) is halved; row 1 (max 2) is at the budget and untouched.
        ("l1->linf", 2.0, [[1.5, -2.0], [1.0, 2.0]]),
        # Row 0 (sum 7) is halved; row 1 (sum 3) is under 3.5.
        ("linf->linf", 3.5, [[1.5, -2.0], [1.0, 2.0]]),
        # Column 1 (sum 6) is scaled by 5/6; column 0 (sum 4) is under 5.
        ("l1->l1", 5.0, [[3.0, -10.0 / 3.0], [1.0, 5.0 / 3.0]]),
        # The whole matrix is scaled by 2 / sigma.
        ("l2->l2", 2.0, (W_EXAMPLE * 2.0 / SIGMA_EXAMPLE).tolist()),
    ],
)
def test_rescale_by_hand(norm, budget, expected):
    layer = layer_with_weight(W_EXAMPLE, lipschitz=budget, norm=norm).eval()
    W_eff = layer.effective_weight()
    torch.testing.assert_close(W_eff, torch.tensor(expected, dtype=torch.float64))


def test_always_normalize_scales_up():
    layer = layer_with_weight(W_EXAMPLE, lipschitz=10.0, norm="l1->linf", always_normalize=True)
    expected = torch.tensor([[7.5, -10.0], [5.0, 10.0]], dtype=torch.float64)
    torch.testing.assert_close(layer.effective_weight(), expected)


def test_always_normalize_keeps_zero_row():
    W = torch.tensor([[0.0, 0.0], [1.0, -3.0]], dtype=torch.float64)
    layer = layer_with_weight(W, lipschitz=2.0, norm="linf->linf", always_normalize=True)
    W_eff = layer.effective_weight()
    assert torch.equal(W_eff[0], torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(W_eff[1], torch.tensor([0.5, -1.5], dtype=torch.float64))


def test_single_entry_columns_use_whole_matrix():
    # Rescaling columns of one entry would be a clamp. The single row is scaled
    # by its largest entry instead, so every entry keeps a gradient.
    W = torch.tensor([[2.0, -8.0, 4.0]], dtype=torch.float64, requires_grad=True)
    W_eff = F_lip.rescale(W, F_lip.unit_norms(W, "l1->l1"), 2.0)
    torch.testing.assert_close(W_eff, torch.tensor([[0.5, -2.0, 1.0]], dtype=torch.float64))
    W_eff.sum().backward()
    assert bool((W.grad != 0).all())


def test_default_leaves_small_weight_alone():
    layer = layer_with_weight(W_EXAMPLE, lipschitz=100.0, norm="l2->l2")
    assert torch.equal(layer.effective_weight(), W_EXAMPLE)


def test_repr_shows_budget_and_norm():
    text = repr(lipmono.LipschitzLinear(3, 2, lipschitz=0.5, norm="l1->linf"))
    assert text.startswith("LipschitzLinear(")
    assert "lipschitz=0.5" in text
    assert "norm='l1->linf'" in text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lipschitz": 0.0}, r"lipschitz must be a positive finite number, got 0\.0"),
        ({"lipschitz": float("nan")}, r"lipschitz must be a positive finite number, got nan"),
        ({"norm": "l3->l3"}, r"norm='l3->l3' is not a supported operator norm"),
    ],
)
def test_invalid_arguments_rejected(kwargs, match):
    error = BudgetError if "lipschitz" in kwargs else ValueError
    with pytest.raises(error, match=match):
        lipmono.LipschitzLinear(3, 2, **kwargs)


def test_invalid_size_rejected():
    with pytest.raises(ValueError, match=r"out_features must be a positive integer, got 0"):
        lipmono.LipschitzLinear(3, 0)


def test_numpy_integer_budget_accepted():
    layer = lipmono.LipschitzLinear(3, 2, lipschitz=np.int64(2), norm="l1->l1")
    assert layer.lipschitz == 2.0


@pytest.mark.parametrize("norm", F_lip.NORMS)
def test_leading_batch_dims(norm):
    torch.manual_seed(0)
    layer = lipmono.LipschitzLinear(5, 3, lipschitz=0.7, norm=norm).eval()
    x = torch.randn(2, 4, 6, 5)
    y = layer(x)
    assert y.shape == (2, 4, 6, 3)
    torch.testing.assert_close(y.reshape(-1, 3), layer(x.reshape(-1, 5)))


@pytest.mark.parametrize("norm", F_lip.NORMS)
def test_gradient_flows_through_rescale(norm):
    torch.manual_seed(0)
    layer = lipmono.LipschitzLinear(4, 3, lipschitz=0.1, norm=norm)
    with torch.no_grad():
        layer.raw_weight.mul_(20)  # far over budget, so the rescale is active
    layer(torch.randn(8, 4)).square().sum().backward()
    grad = layer.raw_weight.grad
    assert grad is not None
    assert bool((grad != 0).all())


def saturating_fit(chain, steps=200, lr=0.05, extra_steps=20):
    """Train a LipschitzMLP on y = 50 * sum(x), then sum |grad| over ``extra_steps`` steps."""
    torch.manual_seed(0)
    model = lipmono.LipschitzMLP(4, [16, 16], lipschitz=1.0, norm=chain)
    X = torch.rand(256, 4) * 2 - 1
    y = 50 * X.sum(dim=1, keepdim=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    layers = [m for m in model.modules() if isinstance(m, lipmono.LipschitzLinear)]
    total = [torch.zeros_like(layer.raw_weight) for layer in layers]
    for step in range(steps + extra_steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(X), y).backward()
        if step >= steps:
            for acc, layer in zip(total, layers, strict=True):
                acc += layer.raw_weight.grad.abs()
        optimizer.step()
    return layers, total


@pytest.mark.parametrize("chain", ["l1", "linf", "l2", "l1->l1"])
def test_no_weight_frozen_after_saturation(chain):
    layers, total = saturating_fit(chain)
    for layer, acc in zip(layers, total, strict=True):
        W_eff = layer.effective_weight()
        norm = F_lip.operator_norm(W_eff.double(), layer.norm).item()
        # The steep target pushes every layer to its budget.
        assert norm == pytest.approx(layer.lipschitz, rel=1e-3)
        assert int((acc == 0).sum()) == 0, f"{layer.norm}: frozen entries {(acc == 0).nonzero()}"


def test_frozen_detector_catches_entry_clamp():
    # Negative control: clamping single entries freezes saturated ones, and the
    # same accumulation of |grad| as above shows it.
    torch.manual_seed(0)
    W = nn.Parameter(torch.randn(4, 4) * 3)
    X = torch.randn(64, 4)
    acc = torch.zeros_like(W)
    for _ in range(5):
        W.grad = None
        (X @ W.clamp(-1, 1).T).sum().backward()
        acc += W.grad.abs()
    assert int((acc == 0).sum()) > 0


class CallCounter:
    def __init__(self, function):
        self.function = function
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


def counted_layer(monkeypatch, norm="l1->linf"):
    torch.manual_seed(0)
    layer = lipmono.LipschitzLinear(6, 4, lipschitz=0.5, norm=norm)
    counter = CallCounter(layer.normalization.normalize)
    monkeypatch.setattr(layer.normalization, "normalize", counter)
    return layer.eval(), counter


def test_eval_cache_computed_once(monkeypatch):
    layer, counter = counted_layer(monkeypatch)
    x = torch.randn(3, 6)
    with torch.no_grad():
        first = layer.weight
        outputs = [layer(x) for _ in range(5)]
        assert layer.weight is first
    with torch.inference_mode():
        layer(x)
    assert counter.calls == 1
    for out in outputs[1:]:
        assert torch.equal(out, outputs[0])


def test_eval_cache_not_used_with_grad(monkeypatch):
    layer, counter = counted_layer(monkeypatch)
    layer(torch.randn(3, 6))
    layer(torch.randn(3, 6))
    assert counter.calls == 2


def test_eval_cache_invalidated_by_optimizer_step(monkeypatch):
    layer, counter = counted_layer(monkeypatch)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    x = torch.randn(3, 6)
    with torch.no_grad():
        before = layer(x)
    layer(x).sum().backward()  # eval mode with grad: not cached
    optimizer.step()
    with torch.no_grad():
        after = layer(x)
        expected = nn.functional.linear(
            x, counter.function(layer.raw_weight, exact=True), layer.bias
        )
    assert counter.calls == 3
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, expected)


def test_eval_cache_invalidated_by_load_state_dict(monkeypatch):
    layer, counter = counted_layer(monkeypatch)
    torch.manual_seed(1)
    other = lipmono.LipschitzLinear(6, 4, lipschitz=0.5, norm="l1->linf").eval()
    x = torch.randn(3, 6)
    with torch.no_grad():
        layer(x)
        layer.load_state_dict(other.state_dict())
        assert torch.equal(layer(x), other(x))
    assert counter.calls == 2


def test_eval_cache_invalidated_by_dtype_move(monkeypatch):
    layer, counter = counted_layer(monkeypatch)
    with torch.no_grad():
        layer(torch.randn(3, 6))
        layer.to(torch.float64)
        y = layer(torch.randn(3, 6, dtype=torch.float64))
        assert layer.weight.dtype == torch.float64
    assert y.dtype == torch.float64
    assert counter.calls == 2


def test_eval_cache_invalidated_by_mode_switch(monkeypatch):
    layer, counter = counted_layer(monkeypatch)
    with torch.no_grad():
        layer(torch.randn(3, 6))
        layer.train()
        layer.eval()
        layer(torch.randn(3, 6))
    assert counter.calls == 2


def make_monotonic_model():
    torch.manual_seed(0)
    model = lipmono.MonotonicMLP(4, [8, 8], monotonic_cst=[1, 0, -1, 0], lipschitz=2.0)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, lipmono.LipschitzLinear):
                layer.raw_weight.mul_(5)
    return model.eval()


def test_jit_script_folds_to_linear():
    model = make_monotonic_model()
    scripted = torch.jit.script(model)
    x = torch.randn(16, 4)
    torch.testing.assert_close(scripted(x), model(x))
    # Scripting replaces each LipschitzLinear by a plain Linear holding W_eff.
    names = {name: module.original_name for name, module in scripted.named_modules()}
    assert names["inner.net.0"] == "Linear"
    assert not any("parametrizations" in name for name in names)
    weights = dict(scripted.named_parameters())
    torch.testing.assert_close(
        weights["inner.net.0.weight"], model.inner.net[0].effective_weight()
    )


def test_jit_script_leaves_model_intact():
    model = make_monotonic_model()
    torch.jit.script(model)
    assert isinstance(model.inner.net[0], lipmono.LipschitzLinear)


def test_jit_script_of_bare_layer_warns(caplog):
    sequential = nn.Sequential(lipmono.LipschitzLinear(3, 2, lipschitz=0.5))
    with caplog.at_level("WARNING", logger="lipmono.layers"):
        torch.jit.script(sequential)
    assert "replaces LipschitzLinear(3, 2) by a plain nn.Linear" in caplog.text


def test_fold_lipschitz_layers_copies():
    model = make_monotonic_model()
    folded = lipmono.layers.fold_lipschitz_layers(model)
    x = torch.randn(8, 4)
    assert type(folded.inner.net[0]) is nn.Linear
    assert isinstance(model.inner.net[0], lipmono.LipschitzLinear)
    torch.testing.assert_close(folded(x), model(x))


def test_torch_export_matches_eager():
    model = make_monotonic_model()
    x = torch.randn(16, 4)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.parametrize("chain", ["l1", "l2"])
def test_torch_compile_train_and_eval(chain):
    # aot_eager runs Dynamo's capture and AOT autograd, the stages that see the
    # parametrization, the buffer updates and the custom MaxMin, without the
    # C++ code generation of the default backend, which takes minutes on CPU.
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = lipmono.MonotonicMLP(4, [8, 8], monotonic_cst=[1, 0, -1, 0], norm=chain)
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = torch.randn(16, 4)

    compiled(x).square().sum().backward()
    eager(x).square().sum().backward()
    for got, expected in zip(model.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(got.grad, expected.grad, rtol=1e-4, atol=1e-6)
    for got, expected in zip(model.buffers(), eager.buffers(), strict=True):
        torch.testing.assert_close(got, expected)

    model.eval()
    eager.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x))

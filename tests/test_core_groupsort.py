"""GroupSort: values, permutation property, errors, gradients and TorchScript."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lipmono
from lipmono import functional as F_lip


def test_max_min_known_values():
    x = torch.tensor([[1.0, -2.0, 3.0, 0.5, 4.0, -1.0]])
    expected = torch.tensor([[1.0, 4.0, 3.0, 0.5, -2.0, -1.0]])
    assert torch.equal(lipmono.GroupSort(2)(x), expected)


def test_full_sort_known_values():
    x = torch.tensor([[1.0, -2.0, 3.0, 0.5, 4.0, -1.0]])
    assert torch.equal(lipmono.GroupSort(6)(x), torch.tensor([[4.0, 3.0, 1.0, 0.5, -1.0, -2.0]]))
    assert torch.equal(lipmono.GroupSort(3)(x), torch.tensor([[3.0, 1.0, -2.0, 4.0, 0.5, -1.0]]))


def test_group_size_one_is_identity():
    x = torch.randn(3, 5)
    assert torch.equal(lipmono.GroupSort(1)(x), x)


def test_indivisible_width_rejected():
    with pytest.raises(ValueError, match=r"got 5 features and group_size=2"):
        lipmono.GroupSort(2)(torch.randn(3, 5))


@pytest.mark.parametrize("group_size", [0, -2, 2.0, True])
def test_invalid_group_size_rejected(group_size):
    with pytest.raises(ValueError, match=r"group_size must be a positive integer"):
        lipmono.GroupSort(group_size)


@settings(deadline=None, max_examples=40)
@given(
    n_groups=st.integers(1, 6),
    group_size=st.sampled_from([1, 2, 3, 4]),
    batch=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    requires_grad=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_output_is_permutation_per_row(n_groups, group_size, batch, requires_grad, seed):
    generator = torch.Generator().manual_seed(seed)
    n = n_groups * group_size
    # Rounded values make ties common, the case where a wrong mask would duplicate.
    x = torch.randint(-3, 4, (*batch, n), generator=generator).double()
    x.requires_grad_(requires_grad)
    y = lipmono.GroupSort(group_size)(x).detach()
    assert y.shape == x.shape
    rows_in = x.detach().reshape(-1, n).sort(dim=-1).values
    rows_out = y.reshape(-1, n).sort(dim=-1).values
    assert torch.equal(rows_in, rows_out)


@settings(deadline=None, max_examples=25)
@given(half=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_gradient_is_permutation(half, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 2 * half, generator=generator, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(5, 2 * half, generator=generator, dtype=torch.float64)
    lipmono.GroupSort(2)(x).backward(grad_out)
    assert torch.equal(x.grad.sort(dim=-1).values, grad_out.sort(dim=-1).values)


def separated_pairs(rows, half, gap=0.1, seed=0):
    """Return float64 inputs whose paired entries differ by at least ``gap``."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, half, generator=generator, dtype=torch.float64)
    sign = torch.randint(0, 2, (rows, half), generator=generator).double() * 2 - 1
    b = a + sign * (gap + torch.rand(rows, half, generator=generator, dtype=torch.float64))
    return torch.cat((a, b), dim=-1).requires_grad_(True)


def test_gradcheck_max_min_custom_path():
    x = separated_pairs(4, 3)
    assert torch.autograd.gradcheck(F_lip.max_min, (x,))
    assert torch.autograd.gradgradcheck(F_lip.max_min, (x,))


def test_gradcheck_max_min_reference_path():
    x = separated_pairs(4, 3)
    assert torch.autograd.gradcheck(F_lip._max_min_reference, (x,))


def test_custom_and_reference_paths_agree():
    x = separated_pairs(6, 5, seed=3)
    grad_out = torch.randn(6, 10, dtype=torch.float64)
    fast = F_lip.max_min(x)
    (grad_fast,) = torch.autograd.grad(fast, x, grad_out)
    reference = F_lip._max_min_reference(x)
    (grad_reference,) = torch.autograd.grad(reference, x, grad_out)
    assert torch.equal(fast, reference)
    assert torch.equal(grad_fast, grad_reference)


def test_gradcheck_full_sort():
    generator = torch.Generator().manual_seed(1)
    # Distinct values spaced by at least 0.1 within each group, so no ties.
    x = (torch.randperm(12, generator=generator).double() * 0.1).reshape(2, 6)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: F_lip.group_sort(t, 3), (x,))
    assert torch.autograd.gradcheck(lambda t: F_lip.group_sort(t, 6), (x,))


def test_no_grad_path_matches():
    x = torch.randn(7, 8)
    with torch.inference_mode():
        fast = lipmono.GroupSort(2)(x)
    assert torch.equal(fast, F_lip._max_min_reference(x))


@pytest.mark.parametrize("group_size", [2, 4])
def test_jit_script(group_size):
    module = lipmono.GroupSort(group_size)
    scripted = torch.jit.script(module)
    x = torch.randn(3, 8)
    assert torch.equal(scripted(x), module(x))
    width = 6 if group_size == 4 else 7
    with pytest.raises(torch.jit.Error, match=f"got {width} features and group_size={group_size}"):
        scripted(torch.randn(3, width))


def test_jit_trace_records_reference_path():
    traced = torch.jit.trace(lipmono.GroupSort(2), torch.randn(2, 4))
    x = torch.randn(5, 4)
    assert torch.equal(traced(x), F_lip._max_min_reference(x))


def test_torch_func_transforms():
    torch.manual_seed(0)
    model = lipmono.MonotonicMLP(4, [8], monotonic_cst=[1, 0, 0, 0]).double()
    X = torch.randn(3, 4, dtype=torch.float64)
    batched = torch.func.vmap(model)(X)
    torch.testing.assert_close(batched, model(X))
    jacobian = torch.func.jacrev(model)(X[0])
    expected = torch.autograd.functional.jacobian(model, X[0])
    torch.testing.assert_close(jacobian, expected)

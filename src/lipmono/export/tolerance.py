r"""A bound on the rounding difference between two evaluations of a folded network.

Different evaluators (torch eager, ONNX Runtime, the C export, NumPy) sum the
same products in different orders, so their outputs differ by rounding. For a
dense layer computed in a float type with unit roundoff :math:`u` and fan-in
:math:`n`, any summation order gives

.. math::

    |\mathrm{fl}(W h + b) - (W h + b)| \le (n + 2)\, u\, (|W|\,|h| + |b|),

and an error :math:`e` in the input of a layer grows to at most
:math:`\|W\|_{\infty\to\infty} \|e\|_\infty`. GroupSort and ReLU are
1-Lipschitz in :math:`\ell_\infty`, so :func:`rounding_tolerance` carries the
largest error and magnitude across them. Two evaluators each within the bound
differ by at most twice it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .fold import FoldedNetwork

__all__ = ["rounding_tolerance"]


def rounding_tolerance(
    folded: FoldedNetwork, x: Tensor, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Return, per row and output, twice the rounding error bound of ``folded`` at ``x``.

    Parameters
    ----------
    folded : FoldedNetwork
        The network.
    x : Tensor of shape (N, in_features)
        The inputs.
    dtype : torch.dtype, default=torch.float32
        The float type the evaluators compute in.

    Returns
    -------
    Tensor of shape (N, out_features), float64
        A bound on the difference between two evaluations of ``folded`` at ``x``
        in ``dtype``, each summing in any order.
    """
    u = torch.finfo(dtype).eps / 2
    with torch.no_grad():
        x_abs = x.detach().to(torch.float64).abs()
        magnitude = x_abs
        error = u * x_abs  # the input's own rounding to dtype
        for layer in folded.body:
            if isinstance(layer, nn.Linear):
                W = layer.weight.detach().to(torch.float64)
                b = torch.zeros(W.shape[0], dtype=torch.float64)
                if layer.bias is not None:
                    b = layer.bias.detach().to(torch.float64).abs()
                fan_in = W.shape[1]
                magnitude = magnitude @ W.abs().T + b
                error = error @ W.abs().T + (fan_in + 2) * u * magnitude
            else:
                magnitude = magnitude.amax(dim=-1, keepdim=True).expand_as(magnitude)
                error = error.amax(dim=-1, keepdim=True).expand_as(error)
        if folded.skip is not None:
            W = folded.skip.weight.detach().to(torch.float64)
            skip_magnitude = x_abs @ W.abs().T
            error = error + u * x_abs @ W.abs().T + (W.shape[1] + 2) * u * skip_magnitude
            # The final addition rounds once more.
            error = error + u * (magnitude + skip_magnitude)
    return 2 * error

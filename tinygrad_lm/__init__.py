"""tinygrad_lm: reverse-mode autograd on NumPy and CuPy, layers, optimizers and a small GPT.

>>> import tinygrad_lm as tl
>>> x = tl.Tensor([[1.0, -2.0]], requires_grad=True)
>>> x.relu().sum().backward()
>>> x.grad.tolist()
[[1.0, 0.0]]
"""
import numpy as _np

from .autograd import Function, grad
from .backend import manual_seed
from .config import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .serialization import load, save
from .tensor import Tensor, cat, from_numpy, stack, tensor, where
from .tracing import trace
from .kernels import get_kernels, set_kernels, set_num_threads

from . import nn, optim  # noqa: E402  (built on the names above)
from . import data  # noqa: E402  (tl.data.GPT2Tokenizer, as PyTorch-style code spells it)

zeros, ones, full = Tensor.zeros, Tensor.ones, Tensor.full
zeros_like, ones_like = Tensor.zeros_like, Tensor.ones_like
randn, rand, arange = Tensor.randn, Tensor.rand, Tensor.arange

float16, float32, float64 = _np.float16, _np.float32, _np.float64
int32, int64, bool = _np.int32, _np.int64, _np.bool_  # noqa: A001  (PyTorch's tl.bool)

__version__ = "0.1.0"

__all__ = [
    "Tensor", "tensor", "from_numpy", "Function", "grad", "gradcheck", "gradgradcheck",
    "GradcheckError",
    "manual_seed", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "cat", "stack", "where", "zeros", "ones", "full", "zeros_like", "ones_like", "randn",
    "rand", "arange", "save", "load", "trace", "set_kernels", "get_kernels", "set_num_threads",
    "nn", "optim", "float16", "float32", "float64", "int32", "int64", "bool",
]

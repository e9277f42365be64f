"""Module: a container of parameters and sub-modules, as in PyTorch.

Attributes that are Parameters or Modules register themselves when assigned, in definition
order, so ``named_parameters()`` walks the model the way it was written.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator, Mapping

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: ``requires_grad`` is on by default. Made from a Tensor,
    it shares that tensor's memory (as in PyTorch); other data is copied.

    >>> t = Tensor([1.0]); p = Parameter(t); p.data is t.data
    True
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        if isinstance(data, Tensor):
            self._adopt(data.data, requires_grad)
            self._version = data._counter()
        else:
            super().__init__(data, requires_grad=requires_grad)


class Module:
    """Base class of layers and models: override ``forward`` and call the module.

    >>> import tinygrad_lm as tl
    >>> class Scale(Module):
    ...     def __init__(self): super().__init__(); self.w = Parameter(tl.ones(2))
    ...     def forward(self, x): return x * self.w
    >>> [name for name, _ in Scale().named_parameters()], Scale()(tl.Tensor([3.0, 4.0])).tolist()
    (['w'], [3.0, 4.0])
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation of the module; subclasses override it and callers use ``module(x)``."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ traversal

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module and every sub-module, each once, with dotted names."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        """This module and every sub-module, each once (see ``named_modules``)."""
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """The direct sub-modules as (attribute name, module) pairs."""
        return iter(self._modules.items())

    def children(self) -> Iterator["Module"]:
        """The direct sub-modules."""
        return iter(self._modules.values())

    def _all_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Every (name, parameter) pair, shared parameters under each of their names."""
        for module_name, module in self._named_modules_with_duplicates():
            for name, p in module._parameters.items():
                yield (f"{module_name}.{name}" if module_name else name), p

    def _named_modules_with_duplicates(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            stack.extend(reversed([(f"{name}.{n}" if name else n, m)
                                   for n, m in module._modules.items()]))

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Parameters in definition order; a shared (tied) one appears once, under its first
        name, so an optimizer updates it once."""
        seen: set[int] = set()
        for name, p in self._all_parameters():
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def parameters(self) -> Iterator[Parameter]:
        """The parameters of ``named_parameters``, without names (what an optimizer takes).

        >>> sum(p.numel() for p in Sequential(Module(), Module()).parameters())
        0
        """
        return (p for _, p in self.named_parameters())

    def num_parameters(self) -> int:
        """The number of trainable values (shared parameters counted once)."""
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ modes and devices

    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active) on this module and all sub-modules; returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """``train(False)``: evaluation mode (dropout off); returns self.

        >>> m = Sequential(Module()).eval()
        >>> m.training, m[0].training
        (False, False)
        """
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (to None, or to zeros if ``set_to_none`` is False)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor.zeros_like(p.grad)

    def to(self, device: Any) -> "Module":
        """Move every parameter to ``device`` in place (optimizers holding them still work)."""
        target = backend.get_device(device)
        for p in self.parameters():
            p.data = target.array(p.data)
            if p.grad is not None:
                p.grad = p.grad.to(target)
        return self

    # ------------------------------------------------------------------ state

    def state_dict(self) -> "OrderedDict[str, Any]":
        """Name -> host NumPy array, every name of a shared parameter included (as PyTorch)."""
        return OrderedDict((name, p.numpy()) for name, p in self._all_parameters())

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters; errors list every missing, unexpected and
        mis-shaped key at once."""
        own = OrderedDict(self._all_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        mis_shaped = [f"{k}: checkpoint {tuple(_shape_of(state[k]))} vs model {own[k].shape}"
                      for k in own if k in state and tuple(_shape_of(state[k])) != own[k].shape]
        problems = []
        if mis_shaped:
            problems.append("mis-shaped keys: " + "; ".join(mis_shaped))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise KeyError(f"load_state_dict for {type(self).__name__}: " + " | ".join(problems))
        for name, p in own.items():
            if name in state:
                value = state[name]
                value = value.data if isinstance(value, Tensor) else value
                p.data = p.device_obj.array(value, dtype=p.dtype).copy()

    def extra_repr(self) -> str:
        """Extra text shown inside ``repr(module)``'s parentheses; layers override it."""
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ")" if not lines else head + "\n  " + "\n  ".join(lines) + "\n)"


def _shape_of(value: Any) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", ()))


class Sequential(Module):
    """Modules applied one after another.

    >>> import tinygrad_lm as tl
    >>> from tinygrad_lm.nn import ReLU, Tanh
    >>> Sequential(ReLU(), Tanh())(tl.Tensor([-1.0, 0.0])).tolist()
    [0.0, 0.0]
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def forward(self, x: Any) -> Any:
        """Apply the modules in order."""
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)


class ModuleList(Module):
    """A list of modules whose parameters are registered."""

    def __init__(self, modules: Any = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        """Add ``module`` at the end (registered under its index); returns self."""
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)


class ModuleDict(Module):
    """A dict of modules whose parameters are registered; keys are also attributes."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        for name, m in (modules or {}).items():
            setattr(self, name, m)

    def __getitem__(self, name: str) -> Module:
        return self._modules[name]

    def __setitem__(self, name: str, module: Module) -> None:
        setattr(self, name, module)

    def __contains__(self, name: str) -> bool:
        return name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def keys(self) -> Any:
        """The module names, in insertion order."""
        return self._modules.keys()

    def items(self) -> Any:
        """The (name, module) pairs, in insertion order."""
        return self._modules.items()

    def values(self) -> Any:
        """The modules, in insertion order."""
        return self._modules.values()

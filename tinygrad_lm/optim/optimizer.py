"""The optimizer base: parameter groups, zero_grad, and state that can be saved and resumed."""
from __future__ import annotations

from typing import Any, Iterable

from .. import backend
from ..tensor import Tensor


class Optimizer:
    """Holds parameter groups (dicts with ``params`` and hyperparameters) and per-parameter
    state; subclasses implement ``step``. Updates happen in place on ``p.data``. Parameters
    without a gradient (``requires_grad=False``, or unused) are skipped, as in PyTorch.

    >>> from tinygrad_lm import Tensor
    >>> from tinygrad_lm.optim import SGD
    >>> SGD([Tensor([1.0], requires_grad=True)], lr=0.1)
    SGD (
    Parameter Group 0
        dampening: 0.0
        lr: 0.1
        momentum: 0.0
        nesterov: False
        weight_decay: 0.0
    )
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # keyed by id(param)
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group: a dict with ``params`` and hyperparameters (missing ones: the defaults)."""
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: every parameter must be a Tensor, not "
                                f"{type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError(f"{type(self).__name__}: a parameter appears in two groups")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check(group)
        self.param_groups.append(group)

    def _check(self, group: dict[str, Any]) -> None:
        """Reject hyperparameters that make no sense, naming them."""
        if group["lr"] < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {group['lr']}")
        if group.get("weight_decay", 0) < 0:
            raise ValueError(f"{type(self).__name__}: invalid weight_decay {group['weight_decay']}")

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines + [")"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (to None, or to zeros if ``set_to_none`` is False)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None if set_to_none or p.grad is None else Tensor.zeros_like(p.grad)

    def step(self) -> None:
        """Update every parameter once from its ``.grad``; subclasses implement the rule."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters per group and state per parameter (by position, as host arrays)."""
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        state = {str(index[pid]): {k: v.numpy() if isinstance(v, Tensor) else v
                                   for k, v in s.items()}
                 for pid, s in self.state.items() if pid in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved; the groups must hold the same number of params."""
        params = [p for g in self.param_groups for p in g["params"]]
        saved_groups = state_dict["param_groups"]
        if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved groups do not match "
                             "this optimizer's parameter groups")
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: (tuple(v) if isinstance(v, list) else v)
                          for k, v in saved.items() if k != "params"})
        self.state = {}
        for key, s in state_dict["state"].items():
            p = params[int(key)]
            self.state[id(p)] = {k: Tensor(v, dtype=p.dtype, device=p.device)
                                 if backend.is_array(v) or isinstance(v, Tensor) else v
                                 for k, v in s.items()}

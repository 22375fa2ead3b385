"""AdamW on torch's own update kernel, without ``torch.optim.Optimizer``'s import of dynamo.

``torch.optim.Optimizer`` wraps ``step``, ``zero_grad``, ``state_dict`` and
``add_param_group`` in ``torch._disable_dynamo``, which imports ``torch._dynamo`` (and sympy,
the FX shape machinery, ...) on the first call: about 1.3 s per process on one idle core, twice
that when ``--cores 4`` shares two. A demo training job spends a few seconds on its epochs, so
that import was a large share of every job that builds no torchvision model (TransUNet,
Swin-Unet, DC-Net, ...; torchvision imports dynamo itself). Likewise
``torch.use_deterministic_algorithms`` imports the inductor's config to set a flag that only
``torch.compile`` reads; :func:`deterministic_cpu` sets the kernel flag alone.

:class:`AdamW` keeps the state in torch's layout (``step``, ``exp_avg``, ``exp_avg_sq`` per
parameter index; one parameter group) and calls the functional ``torch.optim.adamw.adamw``
that ``torch.optim.AdamW`` itself calls, so its updates are bit-identical to
``torch.optim.AdamW`` with the same arguments and its state dicts load into either (tested).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim.adamw import adamw

__all__ = ["AdamW", "deterministic_cpu"]


def deterministic_cpu() -> None:
    """Use deterministic kernels only (warn where none exists), as
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` does for eager code, without
    importing the inductor (its ``deterministic`` flag only matters to ``torch.compile``)."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:  # a torch without the private setter: the public call
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)


class AdamW:
    """Decoupled-weight-decay Adam (Loshchilov & Hutter) over one parameter group.

    The interface the trainer uses from ``torch.optim.AdamW``: ``param_groups[0]["lr"]`` is
    read at every step (the trainer anneals it), ``zero_grad``, ``step``, ``state_dict`` and
    ``load_state_dict``.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, weight_decay: float = 1e-2,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 foreach: bool | None = None) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("AdamW got an empty parameter list")
        self.param_groups: list[dict[str, Any]] = [{
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "amsgrad": False, "maximize": False, "foreach": foreach, "capturable": False,
            "differentiable": False, "fused": None, "decoupled_weight_decay": True,
        }]
        self.state: dict[int, dict[str, Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) every parameter's gradient."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One AdamW update of every parameter that has a gradient."""
        group = self.param_groups[0]
        params, grads, avgs, sqs, steps = [], [], [], [], []
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("AdamW does not support sparse gradients")
            s = self.state.get(i)
            if s is None:
                s = self.state[i] = {
                    "step": torch.tensor(0.0, dtype=torch.float32),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
            params.append(p)
            grads.append(p.grad)
            avgs.append(s["exp_avg"])
            sqs.append(s["exp_avg_sq"])
            steps.append(s["step"])
        if not params:
            return
        beta1, beta2 = group["betas"]
        adamw(params, grads, avgs, sqs, [], steps, foreach=group["foreach"],
              has_complex=any(torch.is_complex(p) for p in params), amsgrad=False,
              beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
              eps=group["eps"], maximize=False)

    def state_dict(self) -> dict[str, Any]:
        """State in ``torch.optim.AdamW``'s layout (parameters by index)."""
        group = {**self.param_groups[0], "params": list(range(len(self.params)))}
        return {"state": {i: dict(s) for i, s in self.state.items()}, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict` or by ``torch.optim.AdamW``."""
        groups = state_dict["param_groups"]
        n = sum(len(g["params"]) for g in groups)
        if len(groups) != 1 or n != len(self.params):
            raise ValueError(f"optimizer state has {len(groups)} group(s) and {n} parameters; "
                             f"this optimizer has 1 group and {len(self.params)} parameters")
        index = {pid: k for k, pid in enumerate(groups[0]["params"])}
        self.param_groups[0].update({k: v for k, v in groups[0].items() if k != "params"})
        self.state = {}
        for pid, s in state_dict["state"].items():
            p = self.params[index[pid]]
            self.state[index[pid]] = {
                k: (v.to(torch.float32) if k == "step"
                    else v.to(device=p.device, dtype=p.dtype)) for k, v in s.items()}

"""Soft sharing of depthwise filters (PAPER.md section 3, the official code checked line by line).

A soft-sharing separable conv holds one depthwise *bank* per domain (``conv_dw.<domain>``, the
paths of a plain model, so a trained ``pointwise`` model converts by ``reshare``), one pointwise
conv, and one *gate* per target domain (``gate.<domain>``). For a sample of a gated domain the
depthwise output is ``sum_d g[n, d] * depthwise_d(x)``, ``g`` the gate's per-sample softmax over
the banks it mixes; a domain without a gate (the model's first domain, the pretraining source,
as in the official code) runs its own bank alone.

Gate (official): the conv's input, global-average-pooled to ``(N, C)`` -> ``Linear(C, C//4 + 1)``
-> ReLU -> ``Linear(C//4 + 1, D)`` -> softmax over the D banks; PyTorch's default Linear init,
which gives about ``1/D`` per bank at step 0. ``own_bank_bias`` (our addition, 0 = official)
adds a constant to the own bank's logit at init.

Fast and exact: the depthwise convolution is linear in its kernel, so the gate goes into the
weights: each sample's kernel is ``w_n = sum_d g[n, d] W_d`` and one convolution with
``groups = N * C`` runs the batch folded into channels (as CondConv does), in the input's
layout (channels_last or contiguous; :mod:`multidomain.layers.soft_mixing` has the forms and the
rule that picks one). The official loop over the banks (``mix_loop``) stays as the reference the
tests compare against; ``SoftSepConv.path`` names the form a layer runs (``"fast"`` by default).

Adding a domain leaves existing domains bit-identical: every gate has a boolean buffer ``mixes``
(one entry per bank, in the model's domain order); a new bank is masked (False) in the existing
gates, and a gate only ever computes over the banks it mixes, so their arithmetic is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from multidomain.layers.per_domain import (
    PerDomain,
    Route,
    Routed,
    current_route,
    declare_role,
    route_call,
)
from multidomain.layers.soft_mixing import MIXERS

GATE_ROLE = "gate"


class GateLogits(nn.Linear):
    """The gate's last layer; ``own_bias`` is added to the own bank's bias at every (re)init,
    so the model's ``init_weights`` (which resets linear layers) keeps it."""

    def __init__(self, hidden: int, num_banks: int, own: int | None, own_bias: float) -> None:
        self.own, self.own_bias = own, own_bias
        super().__init__(hidden, num_banks)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.own is not None and self.own_bias:
            with torch.no_grad():
                self.bias[self.own] += self.own_bias


class SoftGate(nn.Module):
    """One target domain's gate: per-sample weights over the banks it mixes."""

    def __init__(
        self, channels: int, num_banks: int, own: int | None = None, own_bias: float = 0.0
    ) -> None:
        super().__init__()
        hidden = channels // 4 + 1  # the official size (1 for the 3-channel stem)
        self.fc1 = declare_role(nn.Linear(channels, hidden), GATE_ROLE)
        self.fc2 = declare_role(GateLogits(hidden, num_banks, own, own_bias), GATE_ROLE)
        self.register_buffer("mixes", torch.ones(num_banks, dtype=torch.bool))
        self._banks: tuple[tuple[int, int], list[int]] | None = None  # (buffer state, positions)

    def banks(self) -> list[int]:
        """Positions of the banks this gate mixes (the model's domain order).

        Read off ``mixes`` eagerly and kept until the buffer is replaced or written in place
        (its version counter moves): a trace (``torch.export``, ``torch.compile``) cannot read
        a buffer's values, so it uses the positions of the last eager call.
        """
        if torch.compiler.is_compiling() and self._banks is not None:
            return self._banks[1]
        state = (id(self.mixes), self.mixes._version)
        if self._banks is None or self._banks[0] != state:
            self._banks = (state, self.mixes.nonzero().flatten().tolist())
        return self._banks[1]

    def forward(self, x: torch.Tensor, banks: Sequence[int]) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, len(banks))`` weights, summing to 1 per sample."""
        # the mean as a sum and one division: the same values (CPU's mean computes exactly
        # this), but its backward hands on a broadcast view of the (N, C) gradient instead of
        # writing a whole activation-sized one (measurably cheaper at 512 channels 8x8)
        pooled = x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])
        hidden = F.relu(self.fc1(pooled))
        index = torch.tensor(banks, device=x.device)
        # only the mixed rows take part, so a masked bank changes none of the arithmetic
        logits = F.linear(hidden, self.fc2.weight[index], self.fc2.bias[index])
        return logits.softmax(dim=1)

    @torch.no_grad()
    def add_bank(self) -> None:
        """Append a bank this gate does not mix (masked until the gate is retrained)."""
        fc2 = self.fc2
        fc2.weight = nn.Parameter(torch.cat([fc2.weight, fc2.weight.new_zeros(1, fc2.in_features)]))
        fc2.bias = nn.Parameter(torch.cat([fc2.bias, fc2.bias.new_zeros(1)]))
        fc2.out_features += 1
        self.mixes = torch.cat([self.mixes, self.mixes.new_zeros(1)])

    @torch.no_grad()
    def remove_bank(self, position: int) -> None:
        keep = [i for i in range(self.fc2.out_features) if i != position]
        self.fc2.weight = nn.Parameter(self.fc2.weight[keep])
        self.fc2.bias = nn.Parameter(self.fc2.bias[keep])
        self.fc2.out_features -= 1
        if self.fc2.own is not None and self.fc2.own > position:
            self.fc2.own -= 1
        self.mixes = self.mixes[keep]


class SoftGates(PerDomain):
    """The gates of one soft-sharing conv, keyed by target domain; ``bank_names`` is the
    order of the banks (the model's domains). The source domain has none."""

    def __init__(
        self, channels: int, domains: Sequence[str], source: str, own_bank_bias: float = 0.0
    ) -> None:
        self.channels, self.own_bank_bias = channels, own_bank_bias
        self.bank_names, self.source = list(domains), source
        n = len(self.bank_names)
        super().__init__(
            {
                d: SoftGate(channels, n, i, own_bank_bias)
                for i, d in enumerate(domains)
                if d != source
            }
        )

    def add_domain(self, name: str, init_from: str | None = None, **domain: Any) -> None:
        """Mask the new bank in every existing gate; a fresh (official-init) gate for ``name``
        over every bank, its own included."""
        for gate in self.values():
            gate.add_bank()
        self.bank_names.append(name)
        n = len(self.bank_names)
        self[name] = SoftGate(self.channels, n, n - 1, self.own_bank_bias).train(self.training)

    def remove_domain(self, name: str) -> None:
        """Drop ``name``'s gate and its bank from the other gates (their softmax then runs over
        the banks left, which changes their outputs). The source domain cannot go: a model
        rebuilt from its config would give its first domain no gate."""
        if name == self.source:
            raise ValueError(
                f"cannot remove {name!r}: it is the ungated source domain of a soft-sharing "
                "model; re-share the model to another method (models.reshare) first"
            )
        position = self.bank_names.index(name)
        if name in self:
            del self[name]
        for gate in self.values():
            gate.remove_bank(position)
        self.bank_names.remove(name)


class SoftSepConv(Routed):
    """Separable conv whose depthwise part is a gated mixture of every domain's bank."""

    def __init__(self, conv_dw: PerDomain, conv_pw: nn.Module, gate: SoftGates) -> None:
        super().__init__()
        # the gates first: the model asks its layers to remove a domain in module order, and
        # SoftGates.remove_domain may refuse (the source) before anything else has changed
        self.gate = gate
        self.conv_dw = conv_dw
        self.conv_pw = conv_pw
        self.path = "fast"  # a key of MIXERS: "loop" is the official reference

    def depthwise(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        if domain not in self.gate:
            return self.conv_dw[domain](x)
        gate = self.gate[domain]
        positions = gate.banks()
        banks = list(self.conv_dw.values())
        # an export with a dynamic batch cannot hold the fast path's groups = N x C (ONNX
        # needs a static group count): exported programs run the loop, equal by linearity
        path = "loop" if torch.compiler.is_exporting() else self.path
        return MIXERS[path](x, gate(x, positions), [banks[i] for i in positions])

    def forward(self, x: torch.Tensor, route: Route | None = None) -> torch.Tensor:
        route = route or current_route()
        if route.single is not None:
            out = self.depthwise(x, route.single)
        else:
            parts = x.split(route.sizes)
            out = torch.cat(
                [self.depthwise(p, d) for (d, _, _), p in zip(route.segments, parts, strict=True)]
            )
        return route_call(self.conv_pw, out, route)

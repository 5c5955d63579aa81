"""What the soft-sharing gates learned (issue 10, PAPER.md section 3): the mean gate weight per
layer and bank of each target domain, over the images a model is run on, and its heat map.

:class:`GateRecorder` hooks every gate of a model's soft-sharing layers for as long as it is
entered; each call of a domain's gate adds its per-sample weights (``(N, banks mixed)``) to that
domain's sums at the layer, so the means are over images, whatever the batches. A bank the gate
masks gets weight 0, so each row (layer) of a domain's means sums to 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from multidomain.layers.soft_sharing import SoftGates, SoftSepConv


class GateRecorder:
    """``with GateRecorder(model) as gates: ...; gates.means()``."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = {p: m for p, m in model.named_modules() if isinstance(m, SoftSepConv)}
        self.sums: dict[str, dict[str, torch.Tensor]] = {}  # domain -> layer -> (banks,)
        self.counts: dict[str, dict[str, int]] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> GateRecorder:
        for path, layer in self.layers.items():
            for domain, gate in layer.gate.items():
                hook = self._hook(domain, path, layer.gate)
                self._handles.append(gate.register_forward_hook(hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, domain: str, path: str, gates: SoftGates):
        def record(_gate: nn.Module, args: tuple, weights: torch.Tensor) -> None:
            positions = list(args[1])  # the banks the gate mixed, in the model's order
            full = torch.zeros(len(gates.bank_names), dtype=torch.float64)
            full[positions] = weights.detach().sum(dim=0).double().cpu()
            sums = self.sums.setdefault(domain, {})
            sums[path] = sums.get(path, 0) + full
            counts = self.counts.setdefault(domain, {})
            counts[path] = counts.get(path, 0) + weights.shape[0]

        return record

    def means(self) -> dict[str, dict[str, Any]]:
        """Per target domain seen: ``{"layers": [path, ...], "banks": [domain, ...],
        "images": n, "mean_weight": [[...] per layer]}`` (rows in the network's order)."""
        result = {}
        for domain, sums in self.sums.items():
            layers = [p for p in self.layers if p in sums]
            banks = self.layers[layers[0]].gate.bank_names
            rows = [(sums[p] / self.counts[domain][p]).tolist() for p in layers]
            images = self.counts[domain][layers[0]]
            result[domain] = {
                "layers": layers,
                "banks": list(banks),
                "images": images,
                "mean_weight": rows,
            }
        return result


def plot_gate_map(domain: str, entry: dict[str, Any], path: Path) -> None:
    """A heat map (layers x banks) of ``domain``'s mean gate weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = entry["mean_weight"]
    layers, banks = entry["layers"], entry["banks"]
    fig, ax = plt.subplots(figsize=(max(5.0, 2.8 + 0.6 * len(banks)), 1.5 + 0.28 * len(layers)))
    image = ax.imshow(weights, aspect="auto", cmap="viridis", vmin=0.0)
    for row, values in enumerate(weights):  # the numbers too: colours alone are hard to read
        for column, value in enumerate(values):
            ax.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=6, color="w")
    ax.set_xticks(range(len(banks)), banks, rotation=45, ha="right")
    ax.set_yticks(range(len(layers)), layers, fontsize="small")
    ax.set_xlabel("bank (whose depthwise filters)")
    ax.set_title(f"{domain}: mean gate weight\n({entry['images']} images)", fontsize="medium")
    fig.colorbar(image, ax=ax, label="mean gate weight")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_gate_maps(gates: dict[str, dict[str, Any]], out: Path) -> dict[str, str]:
    """``gates-<domain>.png`` in ``out`` for each domain of :meth:`GateRecorder.means`;
    returns the file names by domain."""
    names = {}
    for domain, entry in gates.items():
        names[domain] = f"gates-{domain}.png"
        plot_gate_map(domain, entry, Path(out) / names[domain])
    return names

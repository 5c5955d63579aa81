"""``torch.compile`` over many domains: no domain past torch's recompile limit (8) may silently
run eagerly. The CPU test counts graphs with a counting backend (slow: dynamo traces the
network 20 times); the ``gpu`` tests compile with inductor on CUDA and train in every precision.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import WIDTH
from multidomain.engine.compiled import compile_model, recompile_limit_for
from multidomain.engine.evaluate import autocast
from multidomain.models import create_model

DOMAINS = {f"domain{i}": 3 + i for i in range(10)}  # more than torch's default limit of 8


def many_domain_model(device: str = "cpu"):
    torch.manual_seed(0)
    return create_model("resnet26_dw", dict(DOMAINS), width=WIDTH).to(device)


class CountingBackend:
    """A dynamo backend that counts the graphs it is given and runs them as they are (or hands
    them to ``inner``)."""

    def __init__(self, inner=None) -> None:
        self.graphs = 0
        self.inner = inner

    def __call__(self, graph, example_inputs):
        self.graphs += 1
        return graph.forward if self.inner is None else self.inner(graph, example_inputs)


def graphs_per_domain(model, backend: CountingBackend, run_domain) -> list[int]:
    """Graphs compiled after each domain's first call (cumulative), then after a second pass
    over every domain (which must compile nothing)."""
    compiled = compile_model(model, len(DOMAINS), backend=backend)
    counts = []
    for domain in DOMAINS:
        run_domain(compiled, domain)
        counts.append(backend.graphs)
    for domain in DOMAINS:
        run_domain(compiled, domain)
    return [*counts, backend.graphs]


def expected(counts: list[int]) -> list[int]:
    """Each domain adds as many graphs as the first (none fell back to eager), the second pass
    none."""
    return [counts[0] * (i + 1) for i in range(len(DOMAINS))] + [counts[0] * len(DOMAINS)]


@pytest.fixture
def restore_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_the_recompile_limit_covers_every_domain_in_both_modes():
    assert recompile_limit_for(10) >= 2 * 10


@pytest.mark.slow
def test_every_domain_is_compiled_and_none_runs_eagerly_on_cpu(restore_dynamo):
    model = many_domain_model().eval()
    x = torch.randn(2, 3, 32, 32)
    backend = CountingBackend()

    def run(compiled, domain):
        with torch.no_grad():
            compiled(x, domain)

    counts = graphs_per_domain(model, backend, run)
    # the 9th and 10th domains got graphs of their own: none fell back to eager
    assert counts[0] > 0 and counts == expected(counts)


def _inductor(graph, example_inputs):
    from torch._inductor.compile_fx import compile_fx

    return compile_fx(graph, example_inputs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compiled_training_and_eval_compile_each_domain_once_on_cuda(restore_dynamo):
    model = many_domain_model("cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(8, 3, 32, 32, device="cuda")
    labels = torch.zeros(8, dtype=torch.long, device="cuda")
    backend = CountingBackend(_inductor)

    def train_then_eval(compiled, domain):
        model.train()
        with autocast(torch.device("cuda"), "bf16"):
            loss = F.cross_entropy(compiled(x, domain).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad(), autocast(torch.device("cuda"), "bf16"):
            compiled(x, domain)

    counts = graphs_per_domain(model, backend, train_then_eval)
    assert counts[0] > 0 and counts == expected(counts)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_precision_trains_on_cuda(precision):
    model = many_domain_model("cuda").train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    x = torch.randn(8, 3, 32, 32, device="cuda")
    labels = torch.arange(8, device="cuda") % 3
    losses = []
    for _ in range(5):
        with autocast(torch.device("cuda"), precision):
            loss = F.cross_entropy(model(x, "domain0").float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]  # the same batch five times: the loss falls

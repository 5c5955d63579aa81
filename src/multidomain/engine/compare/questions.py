"""The research questions the compare answers (PAPER.md section 1), in plain sentences with the
numbers; each difference says whether it exceeds the spread over seeds (``stats.difference``)."""

from __future__ import annotations

from multidomain.engine.compare.results import Results, RowResult
from multidomain.engine.compare.stats import Summary, difference, summarize


def measure(results: Results) -> tuple[str, str]:
    """``(name, unit)`` of the figure compared: the score when every row has one."""
    if all(r.score is not None for r in results.rows.values()):
        return "Decathlon score", ""
    return "mean top-1", "%"


def value(result: RowResult, results: Results) -> Summary:
    return result.score if measure(results)[0] == "Decathlon score" else result.mean


def versus(results: Results, a: str, b: str) -> str:
    """One sentence: row ``a`` against row ``b``, the difference and the verdict."""
    name, unit = measure(results)
    ra, rb = results.rows[a], results.rows[b]
    va, vb = value(ra, results), value(rb, results)
    diff = difference(va, vb)
    return (
        f"`{a}` reaches a {name} of {va.text()}{unit} with {ra.relative_params:.2f}x the "
        f"parameters of one ResNet-26, `{b}` {vb.text()}{unit} with {rb.relative_params:.2f}x: "
        f"a difference of {diff.value:+.1f}{unit}; {diff.verdict()}."
    )


def _needs(results: Results, *rows: str) -> str | None:
    missing = [r for r in rows if r not in results.rows]
    if not missing:
        return None
    needed, add = ", ".join(rows), ", ".join(missing)
    return f"not answered: it needs the rows {needed} (add {add} to --methods)."


def rq1(results: Results) -> str:
    """One network for every domain (shared pointwise) against independent networks, and the
    two backbones trained from scratch on the source."""
    parts = []
    other = "finetune-dw" if "finetune-dw" in results.rows else "finetune"
    parts.append(_needs(results, "pointwise", other) or versus(results, "pointwise", other))
    pair = results.source_accuracy
    if {"resnet26_dw", "resnet26_std"} <= pair.keys():
        dw, std = summarize(pair["resnet26_dw"]), summarize(pair["resnet26_std"])
        diff = difference(dw, std)
        parts.append(
            f"Trained from scratch on the source domain ({results.source_domain}), the "
            f"depthwise-separable ResNet-26 reaches {dw.text()}% test top-1 and the standard "
            f"ResNet-26 {std.text()}% (the paper: 63.99% against 60.32% on ImageNet): a "
            f"difference of {diff.value:+.1f}%; {diff.verdict()}."
        )
    else:
        parts.append(
            "The pair of backbones trained from scratch on the source is not here: it needs a "
            "row on each backbone that starts from the plain pretraining."
        )
    return " ".join(parts)


def rq2(results: Results) -> str:
    """Sharing pointwise (the paper) against sharing depthwise, per parameter."""
    return _needs(results, "pointwise", "depthwise") or versus(results, "pointwise", "depthwise")


def rq3(results: Results) -> str:
    """What soft sharing adds to the ``pointwise`` model it starts from."""
    found = _needs(results, "soft", "pointwise") or versus(results, "soft", "pointwise")
    if "soft" in results.rows:
        epochs = results.rows["soft"].epochs
        found += f" Soft sharing trains {' + '.join(map(str, epochs))} epochs per target in all."
    return found


def rq5(results: Results) -> str:
    """The ranking of every row, and the paper's method against the residual adapters."""
    name, unit = measure(results)
    ranked = sorted(results.rows.values(), key=lambda r: -value(r, results).mean)
    ranking = ", ".join(f"`{r.row.name}` {value(r, results).text()}{unit}" for r in ranked)
    parts = [f"Ranking by {name}: {ranking}."]
    for adapters in ("parallel", "series"):
        if {"pointwise", adapters} <= results.rows.keys():
            parts.append(versus(results, "pointwise", adapters))
    return " ".join(parts)


QUESTIONS = {
    "RQ1 (one network: shared cross-domain structure, per-domain spatial filters)": rq1,
    "RQ2 (share pointwise or depthwise?)": rq2,
    "RQ3 (what soft sharing adds)": rq3,
    "RQ5 (against the other multi-domain methods)": rq5,
}


def answers(results: Results) -> dict[str, str]:
    return {question: answer(results) for question, answer in QUESTIONS.items()}

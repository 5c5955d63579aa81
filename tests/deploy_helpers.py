"""Shared pieces of the export and predict tests: ``.pt2`` programs run by a fresh interpreter,
image lists of the tiny mini-decathlon, and the check that a mixed list predicts what each
domain predicts on its own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from multidomain.cli import main
from multidomain.data.dataset import DecathlonDataset

# Loads every ``*.pt2`` of a folder (torch.export only: none of our code) and runs it on the
# tensors of ``inputs.safetensors``, writing ``NAME.got.safetensors``.
_RUN_PROGRAMS = textwrap.dedent(
    """
    import io, sys
    from pathlib import Path
    import torch
    from safetensors.torch import load_file, save_file
    folder = Path(sys.argv[1])
    inputs = load_file(folder / "inputs.safetensors")
    for path in sorted(folder.glob("*.pt2")):
        net = torch.export.load(io.BytesIO(path.read_bytes())).module()
        with torch.no_grad():
            out = {k: net(x) for k, x in inputs.items()}
        save_file(out, str(folder / f"{path.stem}.got.safetensors"))
    """
)


def outputs_in_a_fresh_process(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """``{program name: {input key: output}}`` of every ``.pt2`` file in ``folder``, loaded and
    run by a new interpreter on the tensors of ``folder/inputs.safetensors``."""
    subprocess.run([sys.executable, "-c", _RUN_PROGRAMS, str(folder)], check=True, timeout=600)
    return {
        path.stem: load_file(folder / f"{path.stem}.got.safetensors")
        for path in sorted(folder.glob("*.pt2"))
    }


def split_images(root, domains, per_domain: int = 6) -> list[tuple[str, str]]:
    """``(image path, domain)`` of the test split, the domains interleaved."""
    files = {d: DecathlonDataset(root, d, "test").file_names[:per_domain] for d in domains}
    return [(str(root / files[d][i]), d) for i in range(per_domain) for d in domains]


def write_list(path, rows) -> None:
    path.write_text("image,domain\n" + "".join(f"{image},{domain}\n" for image, domain in rows))


def predict_json(capsys, *args) -> tuple[int, list[dict], str]:
    code = main(["predict", *[str(a) for a in args], "--json", "--device", "cpu"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def assert_mixed_list_predicts_per_domain(capsys, run, rows, list_path) -> list[dict]:
    """``predict --list`` of ``rows`` (mixed batches) gives, in input order, the classes and
    probabilities that ``predict --domain D`` gives each domain's images. Returns the results."""
    write_list(list_path, rows)
    code, mixed, _ = predict_json(
        capsys, "--run", run, "--list", list_path, "--batch-size", "8", "--topk", "3"
    )
    assert code == 0
    assert [(r["image"], r["domain"]) for r in mixed] == rows  # input order
    for domain in dict.fromkeys(d for _, d in rows):
        images = [image for image, d in rows if d == domain]
        code, alone, _ = predict_json(
            capsys, "--run", run, "--domain", domain, *images, "--topk", "3"
        )
        assert code == 0
        ours = [r for r in mixed if r["domain"] == domain]
        for a, b in zip(ours, alone, strict=True):
            assert [c["class"] for c in a["top"]] == [c["class"] for c in b["top"]]
            for ca, cb in zip(a["top"], b["top"], strict=True):
                assert ca["probability"] == pytest.approx(cb["probability"], abs=1e-5)
    return mixed

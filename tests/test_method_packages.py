"""A method may be a package: the stored forms it defines load like the shared ones, and its cells'
plans hash its whole package, no other method's (a chain's hash every link's).

FullyQT's wrappers (tcompress/methods/fullyqt/modules.py) and node pruning's narrowed feed-forward
networks (tcompress/methods/nodeprune/nodes.py) are the forms used here: the chain
``fullyqt > nodeprune`` stores both in one file.
"""

import shutil
import subprocess
import sys

import torch

from conftest import REPO
from tcompress.compress.artifact import save_compressed
from tcompress.config import ModelConfig
from tcompress.methods.fullyqt.modules import FullyQTSpec, freeze, fully_quantize
from tcompress.methods.nodeprune.nodes import estimate_xmax, shrink
from tcompress.model import Vocab, make_model
from tcompress.plan import CELL_SCRIPT, code_digest


def batches(n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    return [(torch.randint(4, 40, (4, 7), generator=g), torch.randint(4, 40, (4, 6), generator=g)) for _ in range(n)]


def test_a_file_with_forms_of_method_packages_loads_in_a_process_that_imported_only_the_loader(tmp_path):
    torch.manual_seed(0)
    model = make_model(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0), Vocab(40, 40))
    fully_quantize(model, FullyQTSpec())
    model.train()
    for src, tgt in batches():
        model(src, tgt)
    freeze(model)
    model.eval()
    xmax = estimate_xmax(model, batches())
    shrink(model, {name: x <= x.median() for name, x in xmax.items()})
    save_compressed(model, tmp_path / "m.safetensors")
    src, tgt = batches(1)[0]
    torch.save({"src": src, "tgt": tgt}, tmp_path / "batch.pt")
    code = ("import sys, torch\n"
            "from tcompress.loader import load_model\n"
            f"model, payload = load_model({str(tmp_path / 'm.safetensors')!r})\n"
            f"b = torch.load({str(tmp_path / 'batch.pt')!r})\n"
            f"torch.save(model(b['src'], b['tgt']), {str(tmp_path / 'out.pt')!r})\n"
            "print(' '.join(sorted(payload['compression'])))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert {"ffn_nodes", "fq_attention", "fq_feedforward", "fq_layernorm", "quantized"} <= set(proc.stdout.split())
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "out.pt"), model(src, tgt))


def test_a_method_packages_code_is_hashed_into_its_own_cells_and_the_chains_it_starts(tmp_path):
    for part in ("tcompress", "stages"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    cells = {"ptq": "ptq", "fullyqt": "fullyqt", "fullyqt_ptq": "fullyqt_ptq", "nodeprune": "nodeprune",
             "chain": ("fullyqt", "nodeprune")}

    def digests():
        return {name: code_digest(methods, CELL_SCRIPT, tmp_path) for name, methods in cells.items()}

    def edit(path: str) -> None:
        with open(tmp_path / path, "a") as f:
            f.write("\n# an edit\n")

    before = digests()
    edit("tcompress/methods/fullyqt/modules.py")   # shared by fullyqt and fullyqt_ptq, loaded by the chain
    after = digests()
    assert {name for name in cells if after[name] != before[name]} == {"fullyqt", "fullyqt_ptq", "chain"}
    edit("tcompress/methods/nodeprune/nodes.py")
    last = digests()
    assert {name for name in cells if last[name] != after[name]} == {"nodeprune", "chain"}

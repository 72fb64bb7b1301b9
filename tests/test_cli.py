"""`tcompress` commands a user types outside the pipeline: one clear line when something is wrong."""

import shutil
import subprocess
import sys

import yaml

from conftest import REPO


def tcompress(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcompress.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_translate_with_a_file_that_is_not_a_checkpoint_says_so_in_one_line(tmp_path):
    (tmp_path / "src.txt").write_text("a\n")
    proc = tcompress("translate", "--checkpoint", "params.yaml", "--tokenizer", str(tmp_path),
                     "--src", str(tmp_path / "src.txt"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "Error: params.yaml: not a tcompress checkpoint (not a PyTorch file, and not a safetensors artifact: header "
        "length 8315181395359440931 does not fit the file)"]


def test_catalog_rewrites_the_stage_list_from_params(tmp_path):
    out = tmp_path / "cells.yaml"
    proc = tcompress("catalog", "--out", str(out), "--lock", str(tmp_path / "dvc.lock"))   # no lock there
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == (REPO / "stages/cells.yaml").read_text()  # the committed list is current


def test_catalog_drops_the_lock_entries_of_stages_dvc_yaml_no_longer_has(tmp_path):
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    entry = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]["cell@ptq-sym-8-full"]
    kept = {"train", "aggregate", "cell@ptq-sym-8-full", "chain@agp-10-70-1-full_then_ptq-sym-8-full"}
    stale = {"cell@ptq-sym-2-emb", "chain@x_then_y"}   # stages an old catalog had
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {n: entry for n in kept | stale}}))
    proc = tcompress("catalog", "--out", str(tmp_path / "cells.yaml"), "--lock", str(tmp_path / "dvc.lock"))
    assert proc.returncode == 0, proc.stderr
    assert "dropped the entries of 2 stages" in proc.stdout
    assert set(yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]) == kept
    again = tcompress("catalog", "--out", str(tmp_path / "cells.yaml"), "--lock", str(tmp_path / "dvc.lock"))
    assert "dropped" not in again.stdout


def _write(path, lines, gz=False):
    import gzip

    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def test_translate_refuses_bad_inputs_in_one_line_before_loading_a_model(tmp_path, monkeypatch):
    """In this process (click's runner): a fresh interpreter per case would spend its time importing
    torch; the first test here runs the command in its own process."""
    from click.testing import CliRunner

    from tcompress.cli import main

    monkeypatch.chdir(REPO)
    src = _write(tmp_path / "src.txt", ["a", "b", "c"])
    cases = {
        "mismatched": (["--src", src, "--ref", _write(tmp_path / "ref.txt", ["a", "b"])],
                       "--src has 3 lines but --ref has 2; they must be line-aligned"),
        "missing": (["--src", str(tmp_path / "nope.txt")], f"{tmp_path / 'nope.txt'}: no such file"),
        "not utf-8": (["--src", str(tmp_path / "latin1.txt")], "not valid UTF-8 (line 2:"),
        "bad gzip": (["--src", str(tmp_path / "broken.gz")], "not a valid gzip file"),
    }
    (tmp_path / "latin1.txt").write_bytes("ok\nGrüße\n".encode("latin-1"))
    (tmp_path / "broken.gz").write_bytes(b"not gzip")
    for name, (args, message) in cases.items():
        result = CliRunner().invoke(main, ["translate", "--checkpoint", "params.yaml", "--tokenizer",  # never loaded
                                           str(tmp_path), "--out", str(tmp_path / "out.txt"), *args])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and message in lines[0], (name, result.stderr)
        assert not (tmp_path / "out.txt").exists(), name   # nothing half-written


def test_commands_and_checks_that_run_no_model_do_not_import_torch(tmp_path):
    """Importing torch costs about two seconds a process: `tcompress --help`, `catalog` and `docs`,
    the params check the resolve stage runs (methods' modes and layer groups included) and the batch
    count the plan stage makes run without it."""
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from tcompress.cli import main\n"
            "for args in (['--help'], ['catalog', '--out', %r], ['docs', '--out', %r]):\n"
            "    result = CliRunner().invoke(main, args)\n"
            "    assert result.exit_code == 0, (args, result.output)\n"
            "from tcompress.params import load_params\n"
            "params = load_params('params.yaml')\n"
            "assert params.catalog, 'no catalog cell was checked'\n"
            "from tcompress.batching import make_batches\n"
            "assert make_batches([3, 5, 4], [4, 6, 2], 12) == [[0, 2], [1]]\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n") % (
        str(tmp_path / "cells.yaml"), str(tmp_path / "methods.md"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr

"""bench/train.py on the CPU: the two Lightning rows (zoo.train's step, and the raw step in the same
Trainer) at a tiny size, and --reuse, which takes an earlier file's finished runs as they are."""
import json
import subprocess

from conftest import load_bench


def test_lightning_rows_run_and_are_reported(monkeypatch, tmp_path):
    mod = load_bench(monkeypatch, "train")
    rows = "zoo DeltaNet via zoo.train (Lightning)," + mod.RAW_IN_TRAINER
    result = mod.main(["--smoke", "--rows", rows, "--out", str(tmp_path)])
    got = {r["model"]: r for r in result["rows"]}
    assert set(got) == set(rows.split(",")) and result["complete"]
    assert all(r["tokens_per_s"] > 0 and r["B"] * r["T"] == 128 for r in got.values())
    assert mod.RAW_IN_TRAINER in (tmp_path / "train.md").read_text()


def test_reuse_takes_finished_runs_and_runs_the_rest(monkeypatch, tmp_path):
    mod = load_bench(monkeypatch, "train")
    done = {"returncode": 0, "wall_s": 1.0, "note": "", "train_loss": [[1, 2.0], [2, 1.5]], "val_loss": [],
            "tokens_per_s_median": 10.0}
    earlier = {"date_utc": "2026-11-27 10:51", "device": "GPU", "runs": {
        mod.ONE: done, mod.TWO: done, mod.CONTROL: done, mod.FSDP: dict(done, returncode=None)}}
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps(earlier))
    ran = []
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, **kw: ran.append(cmd) or _Finished())
    result = mod.main(["--ddp", "--fsdp", "--smoke", "--ddp-steps", "2", "--reuse", str(path),
                       "--out", str(tmp_path / "out"), "--runs-root", str(tmp_path / "runs")])
    assert [cmd[-1] for cmd in ran] == ["name=gpu2_fsdp"]  # the failed FSDP run is the only one that runs
    assert result["runs"][mod.TWO]["note"].startswith(f"from {path}")


class _Finished:
    returncode = 0
    pid = 0

    def communicate(self, timeout=None):
        return "", ""

"""UCF101: the official split lists into the store (preprocess.ucf101, preprocess.folders --splits), and
experiments.ucf101 (--demo, --split, multi-clip multi-crop testing) through the shared trainer."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, run_cli

from preprocess.ucf101 import make_demo_tree
from ttrnn.store import FrameStore

CLASSES = ("ApplyEyeMakeup", "HandstandPushups", "JumpingJack", "JumpRope", "YoYo")  # classInd.txt order


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """5 classes x 3 groups x 1 clip; split N tests group N."""
    return make_demo_tree(tmp_path_factory.mktemp("ucf101") / "ucf101", classes=CLASSES, groups=3, clips_per_group=1,
                          frames=(6, 8), size=(40, 32), seed=1)


def _expected(split):
    """(train sources, test sources) of `split` by the UCF101 rule the demo tree follows: test = group `split`."""
    sources = []
    for name in CLASSES:
        stem = "HandStandPushups" if name == "HandstandPushups" else name
        sources += [(f"{name}/v_{stem}_g{g:02d}_c01.avi", g) for g in (1, 2, 3)]
    return sorted(s for s, g in sources if g != split), sorted(s for s, g in sources if g == split)


@pytest.mark.parametrize("module, dataset", [("preprocess.ucf101", "ucf101"), ("preprocess.folders", "folders")])
def test_official_lists_give_classind_labels_and_three_splits(tree, tmp_path, module, dataset):
    out = tmp_path / "u.h5"
    res = run_cli(module, os.path.join(tree, "UCF-101"), out, "--splits", os.path.join(tree, "ucfTrainTestlist"),
                  "--size", "40x32", "--quiet", "--workers", "1")
    assert res.returncode == 0, res.stderr
    with FrameStore(out) as store:
        assert store.attrs["dataset"] == dataset and len(store) == 15
        assert list(store.classes) == list(CLASSES)  # classInd order, not Python's sort (JumpRope < JumpingJack)
        for source, label in zip(store.index["source"], store.index["label"]):
            assert CLASSES[label] == str(source).split("/")[0]
        assert sorted(store.splits) == ["split01", "split02", "split03"]
        for n in (1, 2, 3):
            train, test = _expected(n)
            assert sorted(store.index["source"][store.splits[f"split0{n}"]["train"]]) == train
            assert sorted(store.index["source"][store.splits[f"split0{n}"]["test"]]) == test


def test_bad_split_lists_are_one_line_errors(tree, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    res = run_cli("preprocess.ucf101", os.path.join(tree, "UCF-101"), tmp_path / "a.h5", "--splits", lists, "--quiet")
    assert res.returncode == 2 and "classInd.txt" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    src_lists = os.path.join(tree, "ucfTrainTestlist")
    for name in os.listdir(src_lists):
        (lists / name).write_text(open(os.path.join(src_lists, name)).read())
    wrong = (lists / "trainlist01.txt").read_text().replace("JumpRope/v_JumpRope_g02_c01.avi 4",
                                                               "JumpRope/v_JumpRope_g02_c01.avi 3")
    (lists / "trainlist01.txt").write_text(wrong)
    res = run_cli("preprocess.ucf101", os.path.join(tree, "UCF-101"), tmp_path / "b.h5", "--splits", lists, "--quiet")
    assert res.returncode == 2 and "trainlist01.txt" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b.h5").exists()


def test_demo_trains_and_tests_3_clips_x_3_crops_per_video(tmp_path, monkeypatch, capsys):
    """experiments.ucf101 --demo in this process (small clips and width), split 2, with multi-view testing."""
    from experiments import ucf101
    monkeypatch.setenv("TTRNN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code = ucf101.main(["--demo", "--split", "2", "--epochs", "1", "--batch-size", "20", "--width", "0.125",
                        "--clip-len", "4", "--crop", "32", "--test-clips", "3", "--test-crops", "3", "--out", str(out),
                        "--workers", "0", "--quiet"])
    assert code == 0, capsys.readouterr().err[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "r3d10_w0.125" and metrics["split"] == "store split 'split02'"
    assert metrics["num_train"] == 40 and metrics["num_test"] == 20  # groups 3, 4 of 6 are split 2's test
    assert metrics["test_protocol"]["views_per_video"] == 9 and metrics["num_test_views"] == 180
    assert metrics["accuracy"] == metrics["video_accuracy"] and 0 <= metrics["clip_accuracy"] <= 1
    assert len(metrics["confusion"]) == 5 and int(np.sum(metrics["confusion"])) == 20
    assert (out / "model.keras").exists()
    assert "test accuracy (3 clips x 3 crops per video, scores averaged" in capsys.readouterr().out
    # experiments.tables lists the demo's run (synthetic clips) in the synthetic table only, with its test views
    from experiments import paper, tables
    unused = {d: {m: (None, None) for m in paper.MODELS} for d in paper.DATASETS}  # paper-model counts: not tested
    report = tables.build_report([out], counts=unused)
    assert not report["baselines"]
    (row,) = [b for b in report["synthetic_runs"] if b["model"] == "r3d10_w0.125"]
    assert row["dataset"] == "ucf101" and row["runs"]["test_views"] == "3×3"
    assert row["runs"]["clip_accuracy"] == metrics["clip_accuracy"] and row["runs"]["mean"] == metrics["accuracy"]
    line = next(ln for ln in tables.to_markdown(report).splitlines() if "r3d10_w0.125" in ln)
    assert "| 3×3 |" in line and f"{metrics['accuracy']:.3f}" in line


def test_split_and_3d_options_are_checked_before_any_work(tmp_path):
    res = run_cli("experiments.ucf101", "--demo", "--split", "4", "--out", tmp_path / "r")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "--split" in res.stderr
    res = run_cli("experiments.ucf101", "--demo", "--model", "wide_r3d", "--depth", "18", "--out", tmp_path / "r")
    assert res.returncode == 2 and "--depth 18 is not offered for wide_r3d" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "r").exists()


SLOW = os.environ.get("TTRNN_SLOW_TESTS") != "1"
# --model → its options at a width that fits small machines (every family's forward and backward in the trainer)
ALL_3D = {"r3d": ["--depth", "10", "--width", "0.125"], "r2plus1d": ["--depth", "10", "--width", "0.125"],
          "preact_r3d": ["--depth", "10", "--width", "0.125"], "wide_r3d": ["--depth", "50", "--width", "0.0625"],
          "resnext3d": ["--depth", "50", "--width", "0.25"], "densenet3d": ["--width", "0.25"],
          "c2d_nl": ["--width", "0.125"], "i3d_nl": ["--width", "0.125"]}


@pytest.fixture(scope="module")
def store(tree, tmp_path_factory):
    from preprocess import ucf101
    out = tmp_path_factory.mktemp("ucf101store") / "u.h5"
    summary = ucf101.build_store(os.path.join(tree, "UCF-101"), str(out), size=(40, 32), progress=False, workers=1)
    assert summary["status"] == 0
    return out


@pytest.mark.skipif(SLOW, reason="slow: one training run per 3D model; TTRNN_SLOW_TESTS=1 runs it (acceptance run)")
@pytest.mark.parametrize("model", list(ALL_3D))
def test_every_3d_model_trains_one_epoch_and_tests_3_clips_x_3_crops(store, tmp_path, model, capsys):
    from experiments import ucf101
    out = tmp_path / "run"
    code = ucf101.main(["--data", str(store), "--split", "1", "--model", model, *ALL_3D[model], "--epochs", "1",
                        "--batch-size", "5", "--clip-len", "4", "--crop", "32", "--test-clips", "3", "--test-crops",
                        "3", "--out", str(out), "--workers", "0", "--quiet"])
    assert code == 0, capsys.readouterr().err[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_train"] == 10 and metrics["num_test"] == 5 and metrics["num_test_views"] == 45
    assert metrics["test_protocol"]["views_per_video"] == 9 and 0 <= metrics["clip_accuracy"] <= 1
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 2 and np.isfinite(float(history[1].split(",")[1]))  # one epoch, finite train loss
    print(model, metrics["params_total"], metrics["epoch_seconds"], metrics["accuracy"], metrics["clip_accuracy"])


def test_preprocess_ucf101_does_not_import_tensorflow():
    code = ("import sys, preprocess.ucf101; bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr

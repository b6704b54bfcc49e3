"""`python -m experiments.predict RUN VIDEO --stream` on a trained run: the line at frame = max-len equals plain
predict, the lines after it equal the saved model on the video's first n frames picked by hand (the state keeps
running), --every and --json, the text form, bad input as one line and exit 2, and (slow) peak memory that does not
grow with the video's length."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, run_cli

from preprocess import celebfaces
from preprocess.synthetic import render_clip, write_video

MAX_LEN, FRAME_SKIP = 3, 2


@pytest.fixture(scope="module")
def run(celebfaces_tree, tmp_path_factory):
    """A 1-epoch TT-GRU run on a celebfaces store of the generated tree (JPEG frames at 160x120, as the dataset
    CLI makes them) with max-len 3 and frame skip 2, so truncation and skipping matter (as test_predict.py's)."""
    root = tmp_path_factory.mktemp("stream")
    store = root / "celebfaces.h5"
    assert celebfaces.build_store(celebfaces_tree, store, workers=1, progress=False)["status"] == 0
    res = run_cli("experiments.celebfaces", "--data", store, "--epochs", "1", "--workers", "0", "--quiet",
                  "--intra-op", "1", "--use-tt", "--max-len", MAX_LEN, "--frame-skip", FRAME_SKIP,
                  "--out", root / "tt_gru")
    assert res.returncode == 0, res.stderr[-2000:]
    return root / "tt_gru"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 29-frame synthetic video (XVID .avi, 64x48, resized to the store's 160x120): 15 frames for the model."""
    path = tmp_path_factory.mktemp("videos") / "long.avi"
    write_video(str(path), render_clip([2], 29, (64, 48), np.random.default_rng(7)))
    return path


def predict_json(capsys, *argv):
    from experiments import predict
    code = predict.main([str(a) for a in argv] + ["--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


def by_class(line):
    return {t["class"]: t["probability"] for t in line["top"]}


def test_line_at_max_len_equals_plain_predict_and_later_lines_the_first_n_frames(run, video, capsys):
    import ttrnn
    from preprocess.video import decode
    from ttrnn.store import as_stored
    store = json.loads((run / "config.json").read_text())["store"]
    classes, attrs = store["classes"], store["attrs"]
    (plain,) = predict_json(capsys, run, video, "--top", len(classes))
    lines = predict_json(capsys, run, video, "--stream", "--top", len(classes))
    assert [line["frame"] for line in lines] == list(range(1, 16))            # --every 1: every frame of 15
    at_max_len = lines[MAX_LEN - 1]
    assert [t["class"] for t in at_max_len["top"]] == [t["class"] for t in plain["top"]]
    np.testing.assert_allclose([t["probability"] for t in at_max_len["top"]],
                               [t["probability"] for t in plain["top"]], atol=1e-5)
    # after max-len: the saved model on the first n frames it sees (every 2nd stored frame), in one call
    model = ttrnn.load_model(run / "model.keras")
    frames = decode(video, size=(attrs["width"], attrs["height"]), frame_skip=attrs["frame_skip"] or 1,
                    fps=attrs["fps"])[0]
    frames = as_stored(frames, attrs["codec"], attrs["quality"])[::FRAME_SKIP]
    for n in (MAX_LEN + 1, 15):
        probs = np.asarray(model(frames[None, :n], training=False))[0]
        streamed = by_class(lines[n - 1])
        np.testing.assert_allclose([streamed[c] for c in classes], probs, atol=1e-5)


def test_every_the_json_format_and_a_url(run, video, capsys):
    lines = predict_json(capsys, run, video, "--stream", "--every", "4", "--top", "2")
    assert [line["frame"] for line in lines] == [3, 4, 8, 12, 15]           # max-len, every 4th, the last
    classes = json.loads((run / "config.json").read_text())["store"]["classes"]
    for line in lines:
        assert set(line) == {"source", "frame", "top"} and line["source"] == str(video)
        assert [set(t) for t in line["top"]] == [{"class", "label", "probability"}] * 2
        assert all(classes[t["label"]] == t["class"] for t in line["top"])
        assert line["top"][0]["probability"] >= line["top"][1]["probability"]
    as_url = predict_json(capsys, run, video.as_uri(), "--stream", "--every", "4", "--top", "2")   # FFmpeg's file:
    assert [(u["source"], u["top"]) for u in as_url] == [(video.as_uri(), line["top"]) for line in lines]
    every_frame = predict_json(capsys, run, video, "--stream", "--top", "2")
    for line in lines:                                                      # chunks of 4 or of 1: the same
        same = every_frame[line["frame"] - 1]["top"]
        assert [t["class"] for t in line["top"]] == [t["class"] for t in same]
        np.testing.assert_allclose([t["probability"] for t in line["top"]], [t["probability"] for t in same],
                                   atol=1e-6)


def test_text_form(run, video, capsys):
    from experiments import predict
    assert predict.main([str(run), str(video), "--stream", "--every", "5", "--top", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{video} (streaming; top 3 probabilities every 5 frames; max-len {MAX_LEN})"
    assert [line.split(":")[0] for line in out[1:]] == ["  frame 3 (max-len)", "  frame 5", "  frame 10",
                                                        "  frame 15"]
    assert all(len(line.split(":")[1].split()) == 6 for line in out[1:])    # 3 x (class, probability)


def test_bad_input_is_one_line_and_exit_2(run, video, tmp_path):
    no_model = tmp_path / "no_model"
    no_model.mkdir()
    shutil.copy(run / "config.json", no_model / "config.json")
    cases = {(run, tmp_path / "missing.avi"): "missing.avi: file not found",
             (run, "99"): "99: no camera with index 99",
             (no_model, video): "has no model.keras",
             (tmp_path, video): "is not a run directory"}
    for (run_dir, source), message in cases.items():
        res = run_cli("experiments.predict", run_dir, source, "--stream")
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
        assert res.stderr.startswith("python -m experiments.predict: error: ") and res.stdout == ""
    res = run_cli("experiments.predict", run, video, "--every", "2")
    assert res.returncode == 2 and res.stderr.strip().endswith("error: --every applies to --stream")


PEAK_RSS = ("import resource, sys; from experiments.predict import main; code = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)")


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_video(run, tmp_path):
    """Peak RSS of streaming 3,000 model frames within 1.1x of 300 (each in a process of its own): the stream
    holds one chunk of frames, whatever the length (plain predict holds the whole decoded video)."""
    import cv2
    peaks = {}
    for frames in (600, 6000):                 # stored frames; the model sees every 2nd
        path = tmp_path / f"v{frames}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"XVID"), 25.0, (160, 120))
        rng = np.random.default_rng(0)
        for start in range(0, frames, 100):
            for frame in render_clip([start % 11], 100, (160, 120), rng):
                writer.write(frame)
        writer.release()
        res = subprocess.run([sys.executable, "-c", PEAK_RSS, str(run), str(path), "--stream", "--every", "100",
                              "--json"], capture_output=True, text=True, cwd=REPO,
                             env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3"))
        assert res.returncode == 0, res.stderr[-2000:]
        assert json.loads(res.stdout.splitlines()[-1])["frame"] == frames // 2
        peaks[frames] = int(res.stderr.split()[-1])
    assert peaks[6000] <= 1.1 * peaks[600], peaks

"""experiments.stream as a library: the frames a stream reads equal what preprocessing's whole-file decoder keeps
(the store's frames), a stateful model fed chunk by chunk equals the same model on the whole clip (NumPy-free
reference: the model itself on the clip in one call, Keras's stateless semantics), and what cannot stream says so
in one line. The trained run, the CLI and the bench figures: tests/end_to_end/test_stream_cli.py,
tests/experiments/test_stream_bench.py."""
import json
import zipfile

import numpy as np
import pytest

from preprocess.synthetic import render_clip, write_video
from ttrnn.cli import UsageError

FRAME = (6, 8, 3)        # (H, W, C) of the small models: 144 values = TT input modes 4 x 4 x 9


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 23-frame XVID .avi at 64x48, 29.97 fps (an odd length: frame skips and chunks leave remainders)."""
    path = tmp_path_factory.mktemp("stream") / "clip.avi"
    write_video(str(path), render_clip([3], 23, (64, 48), np.random.default_rng(5)))
    return path


@pytest.mark.parametrize("size, frame_skip, fps, codec", [
    ((64, 48), 1, None, "raw"), ((32, 24), 2, None, "raw"), ((64, 48), 1, 12.0, "raw"), ((40, 30), 3, 50.0, "raw"),
    ((64, 48), 2, None, "jpeg")])
def test_stream_frames_equal_the_whole_file_decoder(video, size, frame_skip, fps, codec):
    """One frame at a time, the stream keeps the frames `preprocess.video.decode` keeps (size, store frame skip, fps
    resampling down and up) and a JPEG store's coding loss (`as_stored`)."""
    from experiments.stream import stored_frames
    from preprocess.video import decode
    from ttrnn.store import as_stored
    expected = as_stored(decode(video, size=size, frame_skip=frame_skip, fps=fps)[0], codec, 90)
    streamed = np.stack(list(stored_frames(str(video), size, frame_skip, fps, codec, 90)))
    np.testing.assert_array_equal(streamed, expected)


def test_unreadable_sources_are_video_errors_with_the_reason(tmp_path):
    from experiments.stream import open_source
    from preprocess.video import VideoError
    (tmp_path / "notes.avi").write_text("not a video")
    cases = {str(tmp_path / "missing.avi"): "file not found", str(tmp_path / "notes.avi"): "cannot open as a video",
             99: "no camera with index 99"}
    for source, reason in cases.items():
        with pytest.raises(VideoError, match=reason):
            open_source(source)


def test_a_number_is_a_camera_unless_such_a_file_exists(tmp_path, monkeypatch):
    from experiments.stream import parse_source
    monkeypatch.chdir(tmp_path)
    assert parse_source("0") == 0 and parse_source("12") == 12
    (tmp_path / "12").write_bytes(b"")
    assert parse_source("12") == "12" and parse_source("rtsp://host/cam") == "rtsp://host/cam"


def small_model(masked=True, go_backwards=False, lstm=False):
    """uint8 frames (B, T, 6, 8, 3) -> PixelScaling (masks all-zero frames when `masked`) -> TT-GRU / TT-LSTM of 8
    units (modes 4x4x9 -> 2x2x2, ranks 2) -> softmax over 3 classes, as `ttrnn.models.rnn_classifier` builds it."""
    import keras

    import ttrnn
    from ttrnn.layers.pixels import PixelScaling
    keras.utils.set_random_seed(0)
    frames = keras.Input((None,) + FRAME, dtype="uint8")
    pixels = PixelScaling("unit", cast=False, mask_padding=masked)
    scale, shift = pixels.affine()
    layer = ttrnn.TTLSTM if lstm else ttrnn.TTGRU
    rnn = layer(tt_input_shape=[4, 4, 9], tt_output_shape=[2, 2, 2], tt_ranks=[1, 2, 2, 1], input_scale=scale,
                input_shift=shift, go_backwards=go_backwards, bias_initializer="glorot_uniform")
    out = keras.layers.Dense(3, activation="softmax")(rnn(pixels(frames)))
    return keras.Model(frames, out)


@pytest.mark.parametrize("masked, lstm", [(True, False), (True, True), (False, False)])
def test_stateful_model_chunk_by_chunk_equals_the_model_on_the_whole_clip(masked, lstm):
    """After n frames fed in chunks of `length` (a short last chunk pre-padded with zero frames when the model masks
    them, else run at its own length), the probabilities equal the model's on frames[:n] in one call; reset()
    starts over."""
    from experiments.stream import StatefulModel
    model = small_model(masked=masked, lstm=lstm)
    frames = np.random.default_rng(1).integers(1, 256, (9,) + FRAME, dtype=np.uint8)
    whole = {n: np.asarray(model(frames[None, :n]))[0] for n in (2, 4, 5, 6, 8, 9)}   # one trace per length
    stream = StatefulModel(model)
    assert stream.pads is masked
    for length in (2, 4):
        stream.reset()
        for start in range(0, 9, length):
            n = min(start + length, 9)
            np.testing.assert_allclose(stream.feed(frames[start:n], length), whole[n], atol=1e-6)
        assert stream.frames_seen == 9
    stream.reset()
    np.testing.assert_allclose(stream.feed(frames[:5], 4), whole[5], atol=1e-6)   # 4 + 1 in two calls
    np.testing.assert_allclose(stream.feed(frames[5:6]), whole[6], atol=1e-6)


def test_models_that_cannot_stream_are_one_line_usage_errors():
    import keras

    from experiments.stream import StatefulModel
    with pytest.raises(UsageError, match="reads time backwards"):
        StatefulModel(small_model(go_backwards=True))
    frames = keras.Input((6,) + FRAME, dtype="uint8")
    mlp = keras.Model(frames, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(frames)))
    with pytest.raises(UsageError, match="no recurrent layer"):
        StatefulModel(mlp)


def test_a_run_that_samples_frames_over_the_clip_cannot_stream(tmp_path):
    """A TT-MLP run (input mode 'mlp': 6 frames over the whole clip) is refused before its model is loaded."""
    from experiments.stream import StreamClassifier
    config = {"store": {"attrs": {"width": 8, "height": 6}, "classes": ["a", "b"]},
              "input": {"mode": "mlp", "max_len": 100, "num_frames": 6}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(UsageError, match="only sequence models"):
        StreamClassifier(tmp_path)

"""Streaming recognition: classify a video file, a camera or a stream URL as it plays, with a stateful copy of a
trained run's model.

    python -m experiments.predict RUN_DIR SOURCE --stream [--every N] [--top K] [--json]

    from experiments.stream import StreamClassifier
    classifier = StreamClassifier("runs/ucf11-tt_gru")
    for frame, probabilities in classifier.stream("long_video.avi", every=16):    # or a camera: stream(0)
        print(frame, classifier.classes[probabilities.argmax()])

What it does, and why each step is what plain `experiments.predict` does:
- Frames are read one at a time with OpenCV (`cv2.VideoCapture`: a file, a camera index, a URL) and preprocessed
  as the run's store was made, by the same code: `preprocess.video.FrameSampler` (BGR to RGB, the store's size,
  fps resampling, the store's frame skip) and `ttrnn.store.as_stored` (a JPEG store's coding loss). Then every k-th
  of those frames goes to the model, k being the run's `--frame-skip`, as plain predict's clip slice takes them.
- The model is a stateful copy of the run's model (`ttrnn.models.stateful_copy`: the same layers and weights,
  batch 1, every recurrent layer with `stateful=True`, any number of frames per call): each call continues from the
  states the previous call left, so a video is fed in chunks of frames (`StatefulModel`) and nothing but one chunk
  and the states is held: memory stays constant whatever the video's length.
- Equality with plain predict: plain predict feeds the first max-len frames pre-padded with all-zero frames, which
  the paper models mask (`ttrnn.layers.PixelScaling`: a masked step leaves the states as they are), from zero
  states. The stream starts from zero states and feeds the same frames, so after max-len frames its probabilities
  are plain predict's (to float rounding). A chunk with fewer frames than the others is pre-padded with zero frames
  the same way, so that every call has one shape (one trace, no pause in the middle of a stream).
- After max-len frames the states keep running (nothing is dropped or reset), which is what a camera needs: the
  probabilities at frame n are what the model gives for the video's first n frames, i.e. plain predict's with
  max-len n. The model was trained on at most max-len frames, so far past it the states see longer inputs than
  in training.

Frame numbers count the frames the model has seen (after the store's frame skip / fps resampling and the run's
frame skip), from 1. Only sequence models stream (the rnn family: TT-GRU, TT-LSTM, the other formats, GRU, LSTM);
the TT-MLP and the 2D/3D CNNs classify a fixed set of frames sampled over the whole clip.
"""
import contextlib
import itertools
import json
import os
import re
import sys
import tempfile

import numpy as np

from ttrnn.cli import UsageError

CHUNK = 32  # the most frames one model call takes: larger chunks amortize the call; memory grows with the chunk


# ---- the model -------------------------------------------------------------------------------------------------
def streamable_copy(model):
    """`ttrnn.models.stateful_copy(model, batch_size=1)` (recurrent layers `stateful=True`, any number of frames
    per call, the same weights), after checking that `model` can read a video as it plays: UsageError for a model
    without a recurrent layer, or with one that reads time backwards (`go_backwards`, `Bidirectional`)."""
    import keras

    from ttrnn.models import stateful_copy
    if any(isinstance(layer, keras.layers.Bidirectional) or getattr(layer, "go_backwards", False)
           for layer in model.layers):
        raise UsageError(f"model {model.name!r} reads time backwards (go_backwards / Bidirectional): it needs the "
                         "whole clip and cannot stream")
    try:
        return stateful_copy(model, batch_size=1)
    except ValueError as exc:      # no recurrent layer, several inputs
        raise UsageError(str(exc)) from None


def masks_zero_frames(model):
    """True when `model` masks all-zero frames (a `PixelScaling` with `mask_padding`, or `keras.layers.Masking`
    with mask value 0) before its recurrent layers: then zero frames leave the states as they are, and a short
    chunk may be pre-padded with them."""
    import keras

    from ttrnn.layers.pixels import PixelScaling
    from ttrnn.models.stateful import is_recurrent
    for layer in model.layers:
        if isinstance(layer, PixelScaling) and layer.mask_padding:
            return True
        if isinstance(layer, keras.layers.Masking) and float(layer.mask_value) == 0.0:
            return True
        if is_recurrent(layer):
            return False
    return False


class StatefulModel:
    """A trained sequence classifier fed a video chunk by chunk at batch 1, its recurrent states carried between
    calls: `feed(frames)` returns the class probabilities after those frames, given every frame before them since
    the last `reset()`.

    Args:
        model: a Keras model over uint8 frames `(B, T, H, W, C)` with recurrent layers, returning `(B, classes)`
            (the run directory's model.keras, `ttrnn.models.paper_model`, ...). It is not changed: a stateful copy
            is built from it (`streamable_copy`).

    Each call runs the copy on `(1, length, H, W, C)`: on TensorFlow its predict step (`keras.Model.predict_on_batch`,
    compiled once per input shape); on the other backends the model's own call, because Keras's predict step
    there runs without state (on JAX it computes from the state variables but does not write them back, for
    Keras's own stateful GRU too: each call would start from zero states). Frames fewer than `length` are
    pre-padded with all-zero frames when the model masks them (`masks_zero_frames`: the paper models do), so one
    shape serves every call; otherwise they run at their own length. Cost per frame: one frame's input projection
    and one recurrent step; memory: one chunk.
    """

    def __init__(self, model):
        import keras
        self.model = streamable_copy(model)
        self._predict = self.model.predict_on_batch if keras.backend.backend() == "tensorflow" else \
            (lambda batch: keras.ops.convert_to_numpy(self.model(batch, training=False)))
        self.frame_shape = tuple(model.inputs[0].shape[2:])
        self.pads = masks_zero_frames(model)
        self.frames_seen = 0
        self._buffers = {}

    def reset(self):
        """Zero every recurrent state: the next frame starts a new video."""
        from ttrnn.models import reset_states
        reset_states(self.model)
        self.frames_seen = 0

    def feed(self, frames, length=None):
        """Probabilities `(classes,)` float32 after `frames` uint8 `(n, H, W, C)` (n >= 1), run `length` frames
        per call (default n: all at once)."""
        frames = np.asarray(frames)
        n = len(frames)
        if n < 1 or frames.shape[1:] != self.frame_shape or frames.dtype != np.uint8:
            raise ValueError(f"feed takes uint8 frames of shape (n >= 1, {', '.join(map(str, self.frame_shape))}), "
                             f"got {frames.dtype} {frames.shape}")
        length = n if length is None else int(length)
        for start in range(0, n, length):
            part = frames[start:start + length]
            if self.pads:
                batch = self._buffers.get(length)
                if batch is None:
                    batch = self._buffers[length] = np.zeros((1, length) + self.frame_shape, np.uint8)
                batch[0, :length - len(part)] = 0
                batch[0, length - len(part):] = part
            else:
                batch = part[None]
            probabilities = self._predict(batch)
        self.frames_seen += n
        return np.asarray(probabilities, np.float32)[0]


# ---- the frames ------------------------------------------------------------------------------------------------
def parse_source(text):
    """A command-line source: an integer names a camera (OpenCV's index, e.g. 0) unless a file of that name exists;
    anything else is a file path or a stream URL."""
    text = os.fspath(text)
    if text.isdigit() and not os.path.exists(text):
        return int(text)
    return text


def is_url(source):
    return isinstance(source, str) and "://" in source


@contextlib.contextmanager
def opencv_messages(into):
    """Collect what OpenCV and FFmpeg print on fd 2 while opening a capture (their own warnings, e.g. "can't open
    camera by index", "Connection refused") into the list `into` instead of the terminal, so that a failure is one
    line of ours that quotes the first of them (`opencv_reason`)."""
    import cv2
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_WARNING)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        saved = None
    with tempfile.TemporaryFile() as sink:
        if saved is not None:
            os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            cv2.utils.logging.setLogLevel(level)
            sink.seek(0)
            into.extend(line.strip() for line in sink.read().decode("utf-8", "replace").splitlines() if line.strip())


def open_source(source):
    """An opened `cv2.VideoCapture` of `source`: a camera index (int), a stream URL ("scheme://..."), or a video
    file (`preprocess.video.open_video`'s checks). Raises `preprocess.video.VideoError` with the reason."""
    import cv2

    from preprocess.video import VideoError, open_video
    messages = []
    with opencv_messages(messages):
        if not isinstance(source, int) and not is_url(source):
            return open_video(source)            # its own reasons (missing, empty, an image, not a video)
        cap = cv2.VideoCapture(source) if isinstance(source, int) else cv2.VideoCapture(source, cv2.CAP_FFMPEG)
        opened = cap.isOpened()
    if not opened:
        cap.release()
        what = f"no camera with index {source}" if isinstance(source, int) else "cannot open the stream"
        reason = opencv_reason(messages)
        raise VideoError(what + (f" ({reason})" if reason else ""))
    return cap


def opencv_reason(messages):
    """The first of OpenCV's / FFmpeg's messages without its logging prefix ("[ WARN:0@0.02] global cap.cpp:212 ",
    "[tcp @ 0x55d0] "), e.g. "Connection to tcp://127.0.0.1:9 failed: Connection refused"; "" when none."""
    if not messages:
        return ""
    return re.sub(r"^\[[^\]]*\]\s*(global \S+:\d+ )?", "", messages[0]).strip()


def stored_frames(source, size, frame_skip=1, fps=None, codec="raw", quality=None):
    """Generator of a source's frames as a store of these parameters holds them, one uint8 RGB (H, W, 3) at a
    time: `preprocess.video.FrameSampler` (size (W, H), fps resampling, frame skip) and `ttrnn.store.as_stored`
    (codec). Opens the source first (VideoError when it cannot be read); raises VideoError at the end when no
    frame was decoded, or none kept."""
    from preprocess.video import FrameSampler, VideoError, source_fps
    from ttrnn.store import as_stored
    cap = open_source(source)
    try:
        sampler = FrameSampler(size, frame_skip, fps, source_fps(cap))
        kept = 0
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            for rgb in sampler(bgr):
                kept += 1
                yield as_stored(rgb[None], codec, quality)[0]
    finally:
        cap.release()
    if sampler.decoded == 0:
        raise VideoError("no decodable frames")
    if kept == 0:
        raise VideoError("no frames left after resampling/frame skip")


# ---- the run ---------------------------------------------------------------------------------------------------
class StreamClassifier:
    """A finished run's model classifying videos as they play: a file, a camera index or a stream URL, frame by
    frame, with constant memory (module docstring: preprocessing, state, what happens after max-len).

    Args:
        run: a run directory (config.json + model.keras) or an `experiments.predict.Run`. UsageError for a
            directory that is not a finished run, or a run whose model does not read frames in sequence.
        chunk: the most frames one model call takes (default `CHUNK`); `stream` runs min(every, chunk).

    Attributes: `classes` (names, label order), `max_len` (the clip plain predict classifies ends there),
    `frame_skip` (the run's: every k-th stored frame is fed), `multilabel` (sigmoid scores, not a softmax).

    Example:
        classifier = StreamClassifier("runs/ucf11-tt_gru")
        for frame, probabilities in classifier.stream(0, every=30):      # camera 0, a line a second at 30 fps
            print(frame, classifier.classes[int(probabilities.argmax())])
    """

    def __init__(self, run, chunk=CHUNK):
        from experiments.predict import Run
        from ttrnn.data import InputSpec
        self.run = run if isinstance(run, Run) else Run(run)
        spec = InputSpec(**self.run.input)
        if spec.mode != "sequence":
            raise UsageError(f"{self.run.dir} classifies {spec.num_frames} frames sampled over the whole clip "
                             f"(input {spec.mode!r}); only sequence models (--model gru|lstm) can stream")
        if int(chunk) < 1:
            raise UsageError(f"chunk must be >= 1, got {chunk}")
        self.chunk = int(chunk)
        self.max_len, self.frame_skip = spec.max_len, spec.frame_skip
        self.classes, self.multilabel = self.run.classes, self.run.multilabel
        self._model = None

    @property
    def model(self):
        """The `StatefulModel` over the run's model (built at first use: it starts TensorFlow)."""
        if self._model is None:
            self._model = StatefulModel(self.run.model)
        return self._model

    def frames(self, source):
        """Generator of the frames the model sees of `source` (a file path, a camera index, a URL), uint8 RGB
        (H, W, 3), one at a time: the store's preprocessing (`stored_frames`), then every `frame_skip`-th."""
        attrs = self.run.attrs
        frames = stored_frames(source, self.run.size, self.run.frame_skip, self.run.fps, attrs.get("codec", "raw"),
                               attrs.get("quality"))
        for i, frame in enumerate(frames):
            if i % self.frame_skip == 0:
                yield frame

    def stream(self, source, every=1):
        """Generator over `(frame_number, probabilities)`: the class probabilities `(classes,)` after every
        `every`-th frame, after frame `max_len` (plain predict's answer) and after the last frame when the
        source ends (each frame number once). The states start at zero for each call.

        Frames are fed min(every, chunk) at a time, so the probabilities of frame n come once n is read.
        Raises `preprocess.video.VideoError` when the source cannot be opened or yields no frame."""
        from preprocess.video import VideoError
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        every = int(every)
        frames = self.frames(source)
        first = next(frames, None)                   # open and read before building the model: errors first
        if first is None:
            raise VideoError("no frames")
        model = self.model
        model.reset()
        length = min(every, self.chunk)
        buffer = np.empty((length,) + model.frame_shape, np.uint8)
        held, seen, reported, probabilities = 0, 0, 0, None

        def due(n):
            return n % every == 0 or n == self.max_len

        for frame in itertools.chain([first], frames):
            buffer[held] = frame
            held += 1
            if held == length or due(seen + held):
                probabilities = model.feed(buffer[:held], length)
                seen, held = seen + held, 0
                if due(seen):
                    reported = seen
                    yield seen, probabilities
        if held:
            probabilities = model.feed(buffer[:held], length)
            seen += held
        if seen != reported:
            yield seen, probabilities


# ---- the command line (`python -m experiments.predict RUN_DIR SOURCE ... --stream`) --------------------------
STREAM_HELP = ("classify each source as it plays, chunk by chunk, with a stateful copy of the run's model: a video "
               "file, a camera index (0, 1, ...) or a stream URL (rtsp://, http://, ...). A line every N frames "
               "(--every), at frame = the run's max-len (the clip plain predict classifies: the same probabilities) "
               "and at the end of the source. Frames count what the model sees (after the store's and the run's "
               "frame skip). After max-len frames the recurrent state keeps running, never reset (a camera never "
               "ends): frame n's line is what the model gives for the first n frames, as plain predict with "
               "max-len n would (the model was trained on at most max-len). Memory stays constant whatever the "
               "video's length. Sequence models only (TT-GRU, TT-LSTM, the other formats, GRU, LSTM)")
EVERY_HELP = "with --stream: a line every N frames the model sees (default 1)"


def stream_main(args, prog):
    """`experiments.predict`'s --stream: each source of `args.videos` streamed in turn (states reset between them);
    one line per report (text, or JSON: source, frame, top as plain predict writes it). A source that cannot be
    read is a one-line error and the next one still streams (exit status 2 at the end); a bad run directory or
    option is a one-line error, exit 2; Ctrl-C stops the stream (exit 130)."""
    from experiments.predict import top_k
    from preprocess.video import VideoError
    from tf_config.console import quiet_console
    from ttrnn.cli import SIGINT_STATUS
    every = 1 if args.every is None else args.every
    try:
        if not args.stream:
            raise UsageError("--every applies to --stream")
        if every < 1:
            raise UsageError(f"--every must be >= 1, got {every}")
        if args.top < 1:
            raise UsageError(f"--top must be >= 1, got {args.top}")
        classifier = StreamClassifier(args.run_dir)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    quiet_console(args.verbose)  # TensorFlow starts with the model
    k = min(args.top, len(classifier.classes))
    kind = "sigmoid scores" if classifier.multilabel else "probabilities"
    failed = 0
    for text in args.videos:
        try:
            if os.path.isdir(text):
                raise VideoError("is a directory; give a video file, a camera index or a stream URL")
            for n, (frame, probabilities) in enumerate(classifier.stream(parse_source(text), every)):
                best = top_k(probabilities, classifier.classes, k)
                if args.json:
                    print(json.dumps({"source": text, "frame": frame, "top": best}), flush=True)
                    continue
                if n == 0:
                    print(f"{text} (streaming; top {k} {kind} every {every} frames; max-len {classifier.max_len})")
                mark = " (max-len)" if frame == classifier.max_len else ""
                print(f"  frame {frame}{mark}: " + "  ".join(f"{e['class']} {e['probability']:.4f}" for e in best),
                      flush=True)
        except (VideoError, OSError) as exc:
            failed += 1
            print(f"{prog}: error: {text}: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"source": text, "error": str(exc)}), flush=True)
        except UsageError as exc:  # the model cannot be loaded or streamed: the same for every source
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return SIGINT_STATUS
    return 2 if failed else 0

"""Classify raw video files with a trained run: decode as the run's store was made, feed as its evaluation did.

    python -m experiments.predict RUN_DIR VIDEO [VIDEO ...] [--top 5] [--json]
    python -m experiments.predict RUN_DIR VIDEO|CAMERA|URL --stream [--every N] [--top 5] [--json]

Each file is decoded with the preprocessing parameters recorded in the run's config.json (`store.attrs`: frame
size, frame skip, target fps), so its frames equal what the store would hold for it. The model input is built by
the evaluation path of the data pipeline (`ttrnn.data.plan_clip` with training=False, `read_plan`, pre-padding to
`padded_length`): for sequence models the first max-len frames (every frame-skip-th), for TT-MLP / TSN / C3D the
deterministic evaluation frames. Prints the top-K classes with their probabilities per file (softmax; for the
multi-label Hollywood2, independent sigmoid scores); `--json` prints one object per file and line.

A run trained on a feature store (per-frame CNN features) classifies the same way, with one step more: the decoded
frames (the feature store's source frame size, frame skip and rate) are thinned as the extraction did (its
`--frame-skip` / `--fps`) and passed through the run's backbone with its weights (`ttrnn.features`, recorded in
config.json), then fed to the model. A run whose backbone weights file is gone is a one-line error.

A missing or unreadable video is a one-line error for that file; the other files are still predicted and the exit
status is 2. A bad run directory is a one-line error, exit 2.

`--stream` classifies a video file, a camera index or a stream URL as it plays, with a stateful copy of the model
and constant memory: a line every N frames (`--every`), at frame = max-len (this command's answer) and at the end
(`experiments.stream`, also a library: `StreamClassifier`).
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

from experiments.run_dir import CONFIG, MODEL
from experiments.stream import EVERY_HELP, STREAM_HELP, stream_main
from tf_config.console import add_console_args, quiet_console
from ttrnn.cli import OneLineParser, UsageError, exit_now
from ttrnn.store import clip_slice


class DecodedClip:
    """One decoded clip behind the two `FrameStore` read methods `ttrnn.data.read_plan` uses (clip row ignored)."""

    def __init__(self, frames):
        self.frames = frames

    def read(self, i, max_len=None, frame_skip=1):
        return self.frames[clip_slice(len(self.frames), max_len, frame_skip)]

    def read_frames(self, i, frame_indices):
        return self.frames[np.asarray(frame_indices, np.int64)]


class Run:
    """A finished run directory: its model, classes, store preprocessing parameters and input settings."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir)
        config_path, model_path = self.dir / CONFIG, self.dir / MODEL
        if self.dir.is_file():
            raise UsageError(f"{self.dir} is a file; give a run directory ({CONFIG} + {MODEL}) first, then the "
                             "videos")
        if not self.dir.is_dir():
            raise UsageError(f"no run directory at {self.dir}")
        if not config_path.is_file():
            raise UsageError(f"{self.dir} is not a run directory (no {CONFIG})")
        if not model_path.is_file():
            raise UsageError(f"{self.dir} has no {MODEL} (the run has not finished)")
        check_keras_archive(model_path)
        try:
            config = json.loads(config_path.read_text())
            self.attrs = config["store"]["attrs"]
            self.classes = list(config["store"]["classes"])
            self.input = dict(config["input"])
            self.size = (int(self.attrs["width"]), int(self.attrs["height"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{config_path} is not a ttrnn run config ({exc!r})") from None
        self.features = config["store"].get("features")   # None: a frame-store run
        self.frame_skip = int(self.attrs.get("frame_skip") or 1)
        self.fps = self.attrs.get("fps")
        self.multilabel = bool(self.attrs.get("multilabel", False))
        self.model_path = model_path
        self._model = None
        self._backbone = None

    @property
    def model(self):
        if self._model is None:
            import ttrnn
            try:
                self._model = ttrnn.load_model(self.model_path)
            except Exception as exc:  # a damaged or foreign .keras file can fail in many ways: one line
                raise UsageError(f"cannot load {self.model_path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") \
                    from None
        return self._model

    @property
    def backbone(self):
        """A feature run's backbone (`ttrnn.features.backbone_model`) with the weights its store was made with;
        UsageError in one line when they cannot be loaded (a weights file moved or deleted)."""
        if self._backbone is None:
            from ttrnn.features import backbone_model
            f = self.features
            try:
                self._backbone = backbone_model(f["backbone"], weights=f.get("weights"),
                                                pooling=f.get("pooling", "avg"), image_size=f.get("image_size"))
            except Exception as exc:  # noqa: BLE001 (a missing file, a download refused, a foreign file: one line)
                text = str(exc).splitlines()[0] if str(exc) else repr(exc)
                raise UsageError(f"{self.dir} was trained on {f['backbone']} features; its backbone cannot be "
                                 f"loaded: {text}") from None
        return self._backbone

    def decode(self, path):
        """uint8 (T, H, W, 3) frames of a video file as the run's store preprocessing made them; for a feature run,
        the store's (T, F) features of them (`extract`)."""
        from preprocess.video import decode
        from ttrnn.store import as_stored
        frames, src_fps = decode(path, size=self.size, frame_skip=self.frame_skip, fps=self.fps)
        if self.features is not None:
            return self.extract(frames, src_fps)
        return as_stored(frames, self.attrs.get("codec", "raw"), self.attrs.get("quality"))  # JPEG stores' loss too

    def extract(self, frames, src_fps):
        """A feature run: the decoded frames thinned as the feature extraction thinned the stored ones (every
        frame_skip-th, or resampled to its fps at the stored frames' rate, `ttrnn.features.clip_rate`'s rule) ->
        (T, F) features of the run's backbone, in the store's dtype."""
        from ttrnn.data.sampling import resample_indices
        from ttrnn.features import extract_frames
        f = self.features
        if f.get("fps"):
            rate = float(self.fps) if self.fps else float(src_fps or 0) / self.frame_skip
            if not rate > 0:
                raise UsageError("the video has no frame rate, which the run's --fps feature thinning needs")
            frames = frames[resample_indices(len(frames), rate, float(f["fps"]))]
        else:
            frames = frames[::int(f.get("frame_skip") or 1)]
        return extract_frames(self.backbone, frames, dtype=str(self.attrs.get("codec") or "float16"))

    def model_input(self, frames):
        """uint8 (1, T, H, W, 3): the evaluation feed's input for one clip of stored frames `frames` (a feature
        run: (1, T, F) features in the store's dtype)."""
        from ttrnn.data import InputSpec, padded_length, plan_clip, read_plan
        spec = InputSpec(**self.input)
        height, width = frames.shape[1:3] if frames.ndim == 4 else (None, None)   # crops only: no feature run's
        plan = plan_clip(spec, 0, len(frames), False, None, height, width)
        clip = read_plan(DecodedClip(frames), plan)
        t = padded_length([len(clip)], spec) if spec.mode == "sequence" else spec.num_frames
        x = np.zeros((1, t) + clip.shape[1:], dtype=clip.dtype)
        clip = clip[:t]
        x[0, t - len(clip):] = clip  # pre-padding, as BatchFeed.batches
        return x

    def probabilities(self, frames):
        """Class probabilities (C,) for one clip of decoded frames."""
        import keras
        return keras.ops.convert_to_numpy(self.model(self.model_input(frames), training=False))[0]


def check_keras_archive(path):
    """UsageError naming `path` unless it is a complete zip archive (a .keras file): an empty or truncated file
    (a run killed while saving, a failed copy) is said to be one, not left to Keras's misleading "File not found"."""
    import zipfile
    size = path.stat().st_size
    if size == 0:
        raise UsageError(f"{path} is empty (0 bytes): the run was stopped while saving it, or the copy failed; "
                         "rerun the training command")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UsageError(f"{path} is damaged ({size} bytes, not a complete .keras archive: {exc}); rerun the "
                         "training command") from None
    if damaged is not None:
        raise UsageError(f"{path} is damaged (member {damaged} fails its CRC check); rerun the training command")


def feature_run(run_dir):
    """Whether `run_dir`'s config.json says the run trained on a feature store (False when there is none to read:
    the command that reads it then says what is wrong)."""
    try:
        return json.loads((Path(run_dir) / CONFIG).read_text())["store"].get("features") is not None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def top_k(probs, classes, k):
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"class": classes[i], "label": int(i), "probability": float(probs[i])} for i in order]


def main(argv=None):
    ap = OneLineParser(prog="python -m experiments.predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help=f"a finished run directory ({CONFIG} + {MODEL})")
    ap.add_argument("videos", nargs="+", help="video files to classify (--stream: also camera indices, URLs)")
    ap.add_argument("--top", type=int, default=5, help="classes to show per file (default 5)")
    ap.add_argument("--json", action="store_true", help="one JSON object per file and line")
    ap.add_argument("--stream", action="store_true", help=STREAM_HELP)
    ap.add_argument("--every", type=int, default=None, metavar="N", help=EVERY_HELP)
    add_console_args(ap)
    args = ap.parse_args(argv)
    prog = ap.prog
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.stream or args.every is not None:
        if feature_run(args.run_dir):
            print(f"{prog}: error: {args.run_dir} was trained on CNN features; --stream classifies frame-store runs "
                  "only (classify the files without --stream)", file=sys.stderr)
            return 2
        return stream_main(args, prog)
    try:
        if args.top < 1:
            raise UsageError(f"--top must be >= 1, got {args.top}")
        run = Run(args.run_dir)
        quiet_console(args.verbose)  # TensorFlow starts with the model
        run.model  # load once, before the first file, so a bad model is one error rather than one per file
        if run.features is not None:
            run.backbone  # the same for the backbone of a feature run
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    from preprocess.video import VideoError
    failed = 0
    for path in args.videos:
        try:
            if Path(path).is_dir():
                raise VideoError("is a directory; give video files")
            frames = run.decode(path)
        except (VideoError, OSError) as exc:
            failed += 1
            print(f"{prog}: error: {path}: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": path, "error": str(exc)}), flush=True)
            continue
        best = top_k(run.probabilities(frames), run.classes, min(args.top, len(run.classes)))
        if args.json:
            print(json.dumps({"file": path, "frames": int(len(frames)), "top": best}), flush=True)
        else:
            kind = "sigmoid scores" if run.multilabel else "probabilities"
            print(f"{path} ({len(frames)} frames; top {len(best)} {kind})")
            for rank, entry in enumerate(best, 1):
                print(f"  {rank}. {entry['class']:<24} {entry['probability']:.4f}")
            sys.stdout.flush()
    return 2 if failed else 0


if __name__ == "__main__":
    exit_now(main())

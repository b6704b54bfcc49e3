"""Per-frame CNN features of a frame store: a feature store, the RNNs' input in the successors' setting.

    python -m experiments.features FRAME_STORE OUT.h5 --backbone inceptionv3 [--weights imagenet|none|PATH]
        [--pooling avg|max|none] [--image-size N] [--frame-skip K | --fps F] [--dtype float16|float32] [--batch N]
        [--workers N] [--overwrite] [--quiet]

Every clip of FRAME_STORE (any codec) goes through a `keras.applications` backbone without its classifier (the
frame resized whole to the backbone's input size, its own preprocess_input, global average or max pooling, or the
last feature map flattened), and its (T, F) features are stored float16 (F = 2,048 for inceptionv3 and resnet50
pooled) with the clip's index row; the frame store's splits and failed clips are copied. The feature store is a
ttrnn store like the frame store: the same writer (atomic commits, lock), so a killed or interrupted run keeps what
it committed and the same command resumes, computing only the clips not yet stored; `python -m preprocess.check
OUT.h5` verifies it. Reader processes decode the frames ahead of the backbone; `--batch` frames per backbone call
(default by device).

Why here and not in preprocess/: preprocessing never imports TensorFlow (its decode workers stay light), and a
backbone is a Keras model; the library half is `ttrnn.features.extract_store`.

Exit statuses (`ttrnn.cli`): 0 every clip stored; 1 some clips of the frame store could not be read (listed,
recorded in the store's failures), a full disk or another process writing OUT; 2 bad input (a missing store, a
weights file that does not fit, ImageNet weights that cannot be fetched, OUT made with other parameters); 130 / 143
interrupted.
"""
import os
import sys

from tf_config.console import add_console_args, quiet_console
from ttrnn.cli import OK, RUN_ERROR, USAGE, OneLineParser, exit_now, handle_interrupts, interrupted_status

PROG = "python -m experiments.features"
FEATURE_DTYPES = ("float16", "float32")   # ttrnn.store.FEATURE_CODECS, spelled here so --help costs no import
POOLINGS = ("avg", "max", "none")         # ttrnn.features.POOLINGS, likewise


def build_parser():
    """The command line (module docstring)."""
    ap = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("frame_store", help="the frame store to read (made by a preprocess command)")
    ap.add_argument("out", help="the feature store to write, e.g. ucf11-inceptionv3.h5")
    ap.add_argument("--backbone", default="inceptionv3",
                    help="inceptionv3 (default), resnet50, resnet101, mobilenetv2 or efficientnetb0")
    ap.add_argument("--weights", default="imagenet",
                    help="imagenet (default: the Keras cache, else a download), none (random init, for trials) or "
                         "the path of the backbone's weights file")
    ap.add_argument("--pooling", choices=POOLINGS, default="avg",
                    help="spatial pooling of the last feature map: avg (default), max, or none (the map flattened, "
                         "h*w*C values that keep where things are; use a small --image-size, e.g. resnet50 at 64: "
                         "2x2x2048 = 8192)")
    ap.add_argument("--image-size", type=int, default=None,
                    help="backbone input size in pixels (default its ImageNet size: 299 inceptionv3, 224 else)")
    thin = ap.add_mutually_exclusive_group()
    thin.add_argument("--frame-skip", type=int, default=1, help="keep every K-th stored frame (default 1: all)")
    thin.add_argument("--fps", type=float, default=None, help="resample the stored frames to F frames/s")
    ap.add_argument("--dtype", choices=FEATURE_DTYPES, default="float16", help="how features are stored")
    ap.add_argument("--batch", type=int, default=None,
                    help="frames per backbone call (default 64 with a GPU, 8 on CPUs)")
    ap.add_argument("--workers", type=int, default=None,
                    help="reader processes decoding frames ahead of the backbone (default: none on <= 2 cores, "
                         "else one per core up to 4)")
    ap.add_argument("--overwrite", action="store_true", help="replace OUT if it was made with other parameters")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    add_console_args(ap)
    return ap


def check_source(path):
    """A one-line StoreError unless `path` is a readable frame store with its shard folder (before TensorFlow
    starts, so that a typo costs nothing)."""
    from ttrnn.store import FrameStore, StoreError
    with FrameStore(path) as store:
        store.check_shards()
        if store.features is not None:
            raise StoreError(f"{path} is a feature store ({store.features['backbone']} features): give the frame "
                             f"store it was made from ({store.features.get('source')})")


def format_summary(s, params):
    """The lines printed after a run."""
    f = params["features"]
    lines = [f"stored {s['clips'] - len(s['failed'])} of {s['clips']} clips in {s['out']} ({s['new']} new, "
             f"{s['skipped']} already there, {len(s['failed'])} failed): {f['width']}-d {f['backbone']} features "
             f"({f['pooling']} pooling, {f['image_size']} px, weights {f['weights'] or 'none'}), {params['codec']}"]
    if s["frames_new"] and s.get("frames_per_second"):
        lines.append(f"extracted {s['frames_new']} frames in {s['extract_seconds']:.1f} s: "
                     f"{s['frames_per_second']:.1f} frames/s (batch {s['batch']}, {s['workers']} reader processes)")
    if s["failed"]:
        lines.append(f"failed ({len(s['failed'])}): clips of the frame store that cannot be read")
        lines.extend(f"  {cid}: {reason}" for cid, reason in s["failed"])
        lines.append(f"repair the frame store (python -m preprocess.check {s['frame_store']} --repair, then its "
                     f"preprocess command), then run this command again")
    return "\n".join(lines)


def main(argv=None):
    ap = build_parser()
    a = ap.parse_args(argv)
    from ttrnn.store import DiskFullError, StoreError, StoreLockedError, params_of
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handle_interrupts()
    try:
        check_source(a.frame_store)
        quiet_console(a.verbose)   # TensorFlow starts with the backbone
        from preprocess.progress import progress as progress_bar
        from ttrnn.data import ReaderError
        from ttrnn.features import extract_store
        bar = None if a.quiet else (lambda n: progress_bar(n, f"features -> {os.path.basename(a.out)}"))
        s = extract_store(a.frame_store, a.out, a.backbone, weights=a.weights, pooling=a.pooling,
                          image_size=a.image_size, frame_skip=a.frame_skip, fps=a.fps, batch=a.batch,
                          workers=a.workers, dtype=a.dtype, overwrite=a.overwrite, progress=bar)
    except (DiskFullError, StoreLockedError) as e:   # the same command works once there is space / the other ends
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return RUN_ERROR
    except (StoreError, ValueError) as e:            # WeightsError is a ValueError
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return USAGE
    except ReaderError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return RUN_ERROR
    except KeyboardInterrupt as e:
        print("interrupted: committed clips are kept; run the same command again to resume", file=sys.stderr)
        return interrupted_status(e)
    print(format_summary(s, params_of(a.out)))
    return RUN_ERROR if s["failed"] else OK


if __name__ == "__main__":
    exit_now(main())

"""Synthetic action videos as real encoded files, in the UCF11 layout (or Hollywood2 / Celebrities layouts).

Each clip shows one large, bright object (disc or rectangle, ~25-40 px at 160x120) over a random low-contrast
textured background with mild noise. Classes differ only by *motion* (direction, speed, trajectory shape,
rhythm); object size, colour, shape, start position, phase and speed are jittered per clip, so no single
frame tells the class reliably and a model has to look at time.

    python -m preprocess.synthetic OUT_DIR [--groups 4 --clips-per-group 3 --frames 24-40 --size 160x120 --seed 0]

UCF11 layout: OUT/<class>/<v_prefix_GG>/<v_prefix_GG_CC>.mpg|.avi (MPEG-1 'PIM1' / XVID), plus an
`Annotation` folder per class (skipped by the preprocessor, as in the real dataset). `--layout hmdb51`: HMDB51's
class folders and its official split files (`write_synthetic_hmdb51`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import cv2
import numpy as np

from ttrnn.cli import OK, RUN_ERROR, USAGE, OneLineParser

# UCF11 class names (label order) and their group folder prefixes.
UCF11_CLASSES = [
    ("basketball", "shooting"), ("biking", "biking"), ("diving", "diving"), ("golf_swing", "golf"),
    ("horse_riding", "riding"), ("soccer_juggling", "juggle"), ("swing", "swing"), ("tennis_swing", "tennis"),
    ("trampoline_jumping", "jumping"), ("volleyball_spiking", "spiking"), ("walking", "walk_dog"),
]
HOLLYWOOD2_ACTIONS = ["AnswerPhone", "DriveCar", "Eat", "FightPerson", "GetOutCar", "HandShake", "HugPerson",
                      "Kiss", "Run", "SitDown", "SitUp", "StandUp"]
HMDB51_CLASSES = ["brush_hair", "cartwheel", "catch", "chew", "clap", "climb", "climb_stairs", "dive", "draw_sword",
                  "dribble", "drink", "eat", "fall_floor", "fencing", "flic_flac", "golf", "handstand", "hit", "hug",
                  "jump", "kick", "kick_ball", "kiss", "laugh", "pick", "pour", "pullup", "punch", "push", "pushup",
                  "ride_bike", "ride_horse", "run", "shake_hands", "shoot_ball", "shoot_bow", "shoot_gun", "sit",
                  "situp", "smile", "smoke", "somersault", "stand", "swing_baseball", "sword", "sword_exercise",
                  "talk", "throw", "turn", "walk", "wave"]
SOURCE_FPS = 29.97  # UCF11's rate; a valid MPEG-1 frame rate
FOURCC = {".mpg": "PIM1", ".avi": "XVID"}


def trajectory(motion, t, T, rng):
    """Object centre (x, y) in [0, 1]^2 for frames t (array) of a clip of T frames; motion = class index."""
    sp = rng.uniform(0.85, 1.15)  # speed jitter
    ph = rng.uniform(0, 2 * np.pi)  # phase jitter
    u = t * sp
    m = motion % 12
    if m == 0:  # basketball: dribble, fast bounce with sharp bottoms near the floor
        x = np.full_like(u, rng.uniform(0.3, 0.7))
        y = 0.85 - 0.55 * np.abs(np.sin(2 * np.pi * u / 20 + ph))
    elif m == 1:  # biking: steady left -> right
        x = rng.uniform(0.1, 0.25) + 0.018 * u
        y = np.full_like(u, rng.uniform(0.4, 0.7))
    elif m == 2:  # diving: accelerating fall from the top
        x = rng.uniform(0.3, 0.7) + 0.004 * u
        y = 0.1 + 0.8 * (u / (T * sp)) ** 2
    elif m == 3:  # golf swing: fast full circle (counter-clockwise on screen)
        cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.45, 0.55)
        x = cx + 0.28 * np.cos(-2 * np.pi * u / 18 + ph)
        y = cy + 0.35 * np.sin(-2 * np.pi * u / 18 + ph)
    elif m == 4:  # horse riding: right -> left with galloping bob
        x = rng.uniform(0.75, 0.9) - 0.018 * u
        y = rng.uniform(0.45, 0.6) + 0.08 * np.sin(2 * np.pi * u / 6 + ph)
    elif m == 5:  # soccer juggling: small, fast vertical oscillation
        x = np.full_like(u, rng.uniform(0.3, 0.7))
        y = rng.uniform(0.35, 0.6) + 0.1 * np.sin(2 * np.pi * u / 5 + ph)
    elif m == 6:  # swing: slow pendulum hanging from the top
        px, L, th0 = rng.uniform(0.4, 0.6), 0.65, 0.9
        th = th0 * np.sin(2 * np.pi * u / 26 + ph)
        x = px + 0.6 * L * np.sin(th)
        y = 0.1 + L * np.cos(th)
    elif m == 7:  # tennis swing: back and forth along the diagonal
        cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
        s = np.sin(2 * np.pi * u / 14 + ph)
        x, y = cx + 0.3 * s, cy + 0.3 * s
    elif m == 8:  # trampoline: large, slow vertical oscillation
        x = np.full_like(u, rng.uniform(0.3, 0.7))
        y = 0.5 + 0.35 * np.sin(2 * np.pi * u / 28 + ph)
    elif m == 9:  # volleyball spike: slow rise up-left, fast drop down-right (sawtooth)
        p = ((u + ph * 3) % 16) / 16
        rise = p < 0.75
        q = np.where(rise, p / 0.75, (p - 0.75) / 0.25)
        x0 = rng.uniform(0.35, 0.65)
        x = np.where(rise, x0 + 0.15 - 0.3 * q, x0 - 0.15 + 0.3 * q)
        y = np.where(rise, 0.85 - 0.65 * q, 0.2 + 0.65 * q)
    elif m == 10:  # walking: slow left -> right with small steps
        x = rng.uniform(0.15, 0.35) + 0.007 * u
        y = rng.uniform(0.5, 0.7) + 0.03 * np.abs(np.sin(2 * np.pi * u / 12 + ph))
    else:  # 11 (Hollywood2 only): zig-zag down-right
        x = rng.uniform(0.1, 0.3) + 0.012 * u
        y = 0.5 + 0.25 * (2 * np.abs(((u / 10 + ph) % 2) - 1) - 1)
    return np.stack([x, y], -1)


def _background(rng, w, h):
    """Low-contrast smooth texture with a random tint: float32 (h, w, 3) in ~[40, 120]."""
    coarse = rng.uniform(0, 1, (rng.integers(4, 10), rng.integers(4, 10), 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 0.08, (h, w, 3)).astype(np.float32)
    tint = rng.uniform(0.7, 1.0, 3).astype(np.float32)
    return (50 + 60 * np.clip(smooth + fine, 0, 1)) * tint


def render_clip(motions, T, size, rng, appearance=None):
    """Render T frames (uint8 (T, h, w, 3), BGR for cv2 writers) with one object per entry of `motions`."""
    w, h = size
    scale = h / 120.0
    bg = _background(rng, w, h)
    objs = []
    for m in motions:
        traj = trajectory(m, np.arange(T, dtype=np.float64), T, rng)
        if appearance is None:
            colour = rng.uniform(150, 255, 3)
            colour[rng.integers(3)] = 255
            shape = int(rng.integers(2))
        else:
            colour, shape = appearance
        objs.append((traj, rng.uniform(25, 40) * scale, shape, tuple(float(c) for c in colour)))
    frames = np.empty((T, h, w, 3), np.uint8)
    for t in range(T):
        img = bg.copy()
        for traj, sz, shape, colour in objs:
            cx, cy = int(round(traj[t, 0] * w)), int(round(traj[t, 1] * h))
            r = int(sz / 2)
            if shape == 0:
                cv2.circle(img, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
            else:
                cv2.rectangle(img, (cx - r, cy - int(r * 0.8)), (cx + r, cy + int(r * 0.8)), colour, -1)
        img += rng.normal(0, 3, img.shape).astype(np.float32)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


@contextlib.contextmanager
def _quiet_stderr():
    """Silence OpenCV/FFmpeg's C-level notices (e.g. the 'PIM1 tag' fallback note) while writing."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def write_video(path, frames_bgr, fps=SOURCE_FPS):
    """Encode uint8 (T, h, w, 3) BGR frames to `path` (.mpg -> MPEG-1, .avi -> XVID)."""
    ext = os.path.splitext(path)[1].lower()
    h, w = frames_bgr.shape[1:3]
    with _quiet_stderr():
        wr = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*FOURCC.get(ext, "XVID")), fps, (w, h))
    if not wr.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} (fourcc {FOURCC.get(ext, 'XVID')})")
    for f in frames_bgr:
        wr.write(np.ascontiguousarray(f))
    wr.release()


def _frames_range(frames):
    if isinstance(frames, (tuple, list)):
        return int(frames[0]), int(frames[1])
    return int(frames), int(frames)


MARKER = ".ttrnn-synthetic"   # at the root of a generated tree (hidden: the scanners skip it): its store is synthetic


def mark_synthetic(root):
    """Leave the marker that tells preprocessing (preprocess.ingest) that the videos under `root` are generated."""
    with open(os.path.join(root, MARKER), "w") as fh:
        fh.write("videos generated by preprocess.synthetic: not a real dataset\n")


def make_dataset(out_dir, classes=11, groups=4, clips_per_group=3, frames=(24, 40), size=(160, 120), seed=0,
                 layout="ucf11", avi_fraction=0.5):
    """Write a synthetic dataset tree under `out_dir` and return its path.

    layout "ucf11": OUT/<class>/<v_prefix_GG>/<v_prefix_GG_CC>.mpg|.avi, `classes` of the 11 UCF11 classes.
    layout "hollywood2": OUT/AVIClips/actioncliptrain00001.avi ..., OUT/ClipSets/<Action>_{train,test}.txt
      (lines "clipname  1|-1"), `classes` of the 12 actions, 1-2 labels per clip; clips = classes*groups*clips_per_group
      split evenly between train and test.
    layout "celebfaces": OUT/<person>/<NNNN_person_CC>.avi, `classes` people (47 in the real dataset), person =
      object appearance, clips = groups*clips_per_group per person.
    frames: int or (min, max) frames per clip (uniform). Deterministic given `seed`.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    fmin, fmax = _frames_range(frames)
    size = (int(size[0]), int(size[1]))
    rng = np.random.default_rng(seed)
    if layout == "ucf11":
        if not 1 <= classes <= len(UCF11_CLASSES):
            raise ValueError(f"classes must be 1..{len(UCF11_CLASSES)}")
        for c, (name, prefix) in enumerate(UCF11_CLASSES[:classes]):
            os.makedirs(os.path.join(out_dir, name, "Annotation"), exist_ok=True)
            with open(os.path.join(out_dir, name, "Annotation", f"v_{prefix}_01_01.xgtf"), "w") as fh:
                fh.write("<viper/>\n")
            for g in range(1, groups + 1):
                gname = f"v_{prefix}_{g:02d}"
                gdir = os.path.join(out_dir, name, gname)
                os.makedirs(gdir, exist_ok=True)
                for k in range(1, clips_per_group + 1):
                    T = int(rng.integers(fmin, fmax + 1))
                    ext = ".avi" if rng.uniform() < avi_fraction else ".mpg"
                    write_video(os.path.join(gdir, f"{gname}_{k:02d}{ext}"), render_clip([c], T, size, rng))
    elif layout == "hollywood2":
        if not 1 <= classes <= len(HOLLYWOOD2_ACTIONS):
            raise ValueError(f"classes must be 1..{len(HOLLYWOOD2_ACTIONS)}")
        actions = HOLLYWOOD2_ACTIONS[:classes]
        os.makedirs(os.path.join(out_dir, "AVIClips"), exist_ok=True)
        os.makedirs(os.path.join(out_dir, "ClipSets"), exist_ok=True)
        n = classes * groups * clips_per_group
        sets = {"train": [], "test": []}
        for i in range(n):
            split = "train" if i % 2 == 0 else "test"
            name = f"actionclip{split}{len(sets[split]) + 1:05d}"
            labs = {(i // 2) % classes}  # consecutive clips share an action: one to train, one to test
            if rng.uniform() < 0.3 and classes > 1:
                labs.add(int(rng.integers(classes)))
            T = int(rng.integers(fmin, fmax + 1))
            write_video(os.path.join(out_dir, "AVIClips", name + ".avi"),
                        render_clip(sorted(labs), T, size, rng), fps=25)
            sets[split].append((name, labs))
        for split, clips in sets.items():
            for a, action in enumerate(actions):
                with open(os.path.join(out_dir, "ClipSets", f"{action}_{split}.txt"), "w") as fh:
                    for name, labs in clips:
                        fh.write(f"{name}  {1 if a in labs else -1}\n")
    elif layout == "celebfaces":
        for p in range(classes):
            person = f"person_{p + 1:02d}"
            pdir = os.path.join(out_dir, person)
            os.makedirs(pdir, exist_ok=True)
            prng = np.random.default_rng([seed, p])
            appearance = (prng.uniform(60, 255, 3), int(prng.integers(2)))
            for k in range(1, groups * clips_per_group + 1):
                T = int(rng.integers(fmin, fmax + 1))
                write_video(os.path.join(pdir, f"{p + 1:04d}_{person}_{k:02d}.avi"),
                            render_clip([int(rng.integers(11))], T, size, rng, appearance), fps=25)
    else:
        raise ValueError(f"unknown layout {layout!r} (ucf11, hollywood2, celebfaces)")
    mark_synthetic(out_dir)
    return out_dir


def write_synthetic_hmdb51(root, classes=5, groups=6, clips_per_group=2, frames=(20, 28), size=(160, 120), seed=0):
    """A synthetic HMDB51-layout tree under `root`; returns `root`.

    root/hmdb51_org/<class>/<Title>_<class>_u_nm_np1_fr_med_<k>.avi: the first `classes` of HMDB51's 51 actions
    (class c moves as synthetic motion c), `groups` source titles ("Synthetic_Movie_01", ...: HMDB51 cuts several
    clips from one movie or video, whose title starts the file name) of `clips_per_group` clips each.
    root/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt: the official split files' format (lines
    `<video>.avi <id>`, 1 = train, 2 = test, 0 = not used). Split s tests the titles g with (g + s) % 3 == 0 and
    leaves the first clip of the titles with (g + s) % 3 == 2 unused, so each split uses all three ids and keeps
    a title on one side only, as the official splits keep a source video."""
    if not 1 <= classes <= len(HMDB51_CLASSES):
        raise ValueError(f"classes must be 1..{len(HMDB51_CLASSES)}")
    root = os.fspath(root)
    videos, lists = os.path.join(root, "hmdb51_org"), os.path.join(root, "testTrainMulti_7030_splits")
    os.makedirs(lists, exist_ok=True)
    fmin, fmax = _frames_range(frames)
    rng = np.random.default_rng(seed)
    for c, name in enumerate(HMDB51_CLASSES[:classes]):
        os.makedirs(os.path.join(videos, name), exist_ok=True)
        entries = []
        for g in range(groups):
            for k in range(clips_per_group):
                video = f"Synthetic_Movie_{g + 1:02d}_{name}_u_nm_np1_fr_med_{k}.avi"
                length = int(rng.integers(fmin, fmax + 1))
                write_video(os.path.join(videos, name, video), render_clip([c], length, size, rng), fps=30)
                entries.append((video, g, k))
        for split in (1, 2, 3):
            roles = {g: (g + split) % 3 for g in range(groups)}
            with open(os.path.join(lists, f"{name}_test_split{split}.txt"), "w") as fh:
                for video, g, k in entries:
                    use = 2 if roles[g] == 0 else (0 if roles[g] == 2 and k == 0 else 1)
                    fh.write(f"{video} {use} \n")    # the official files end each line with a space
    mark_synthetic(videos)
    return root


def _size(s):
    try:
        w, h = s.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 160x120, got {s!r}") from None


def _frames_arg(s):
    try:
        a, _, b = s.partition("-")
        return (int(a), int(b or a))
    except ValueError:
        raise argparse.ArgumentTypeError(f"frames must be N or MIN-MAX, got {s!r}") from None


def main(argv=None):
    ap = OneLineParser(prog="python -m preprocess.synthetic", description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--layout", default="ucf11", choices=["ucf11", "hollywood2", "celebfaces", "hmdb51"])
    ap.add_argument("--classes", type=int, default=None,
                    help="default: 11 (ucf11), 12 (hollywood2), 47 (celebfaces), 5 (hmdb51)")
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--clips-per-group", type=int, default=3)
    ap.add_argument("--frames", type=_frames_arg, default=(24, 40), help="frames per clip: N or MIN-MAX")
    ap.add_argument("--size", type=_size, default=(160, 120), help="WxH of the written videos")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    classes = a.classes or {"ucf11": 11, "hollywood2": 12, "celebfaces": 47, "hmdb51": 5}[a.layout]
    try:
        if a.layout == "hmdb51":
            print(write_synthetic_hmdb51(a.out_dir, classes=classes, groups=a.groups, clips_per_group=a.clips_per_group,
                                         frames=a.frames, size=a.size, seed=a.seed))
            return OK
        path = make_dataset(a.out_dir, classes=classes, groups=a.groups, clips_per_group=a.clips_per_group,
                            frames=a.frames, size=a.size, seed=a.seed, layout=a.layout)
    except ValueError as e:  # bad numbers of classes, layout: a usage error
        print(f"error: {e}", file=sys.stderr)
        return USAGE
    except (OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return RUN_ERROR
    print(path)
    return OK



# ---- frames for benchmarks: arrays, no files -----------------------------------------------------------------
def moving_block_frames(t, rng, size=(160, 120)):
    """uint8 (t, h, w, 3) frames that compress like video, for store and codec benchmarks: a smooth colour ramp
    background (random slopes per clip), a white 30x30 block moving 3 px right and 2 px down per frame (wrapping),
    and uniform noise of 0-7 levels. No pixel is 0, so no frame is all-zero padding.

    `size` is (width, height) as elsewhere in this module. Unlike `render_clip`, the frames are not encoded to a
    file and carry no class: what matters is that codecs see the smooth regions and the motion of real video
    while the figures stay comparable from run to run (same `rng` state, same frames).
    Cost: O(t h w): a handful of NumPy passes over each frame."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([(xx * rng.uniform(0.5, 1.5) + yy * rng.uniform(0.5, 1.5) + 60 * c) % 256 for c in range(3)], -1)
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        img = bg.copy()
        cx, cy = int(20 + (i * 3) % (w - 40)), int(20 + (i * 2) % (h - 40))
        img[cy - 15:cy + 15, cx - 15:cx + 15] = 255
        img += rng.integers(0, 8, img.shape)
        frames[i] = np.clip(img, 1, 255)        # no all-zero frame: zero frames are padding
    return frames


def cycled_frames(t, rng, pool):
    """uint8 (t, h, w, 3): `t` frames taken in turn from `pool` (uint8 (N, h, w, 3), e.g. frames of
    `moving_block_frames` or of real videos), from a random start and wrapping, each with a white 30x30 block
    moving 3 px right and 2 px down per frame. For stores of UCF11's size (~775 k frames), where generating every
    frame would cost more than writing it: here a frame costs one memory copy and one block. No frame is all-zero
    padding as long as the pool has none."""
    h, w = pool.shape[1:3]
    start = int(rng.integers(len(pool)))
    frames = pool[(start + np.arange(t)) % len(pool)]
    for i in range(t):
        cx, cy = int(15 + (i * 3) % (w - 30)), int(15 + (i * 2) % (h - 30))
        frames[i, cy - 15:cy + 15, cx - 15:cx + 15] = 255
    return frames


if __name__ == "__main__":
    sys.exit(main())

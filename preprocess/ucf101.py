"""UCF101 (101 actions, 13,320 clips, 25 groups): UCF-101/<Class>/v_<Class>_gGG_cCC.avi + the official split lists
(ucfTrainTestlist/) -> one frame store with the three splits.

    python -m preprocess.ucf101 UCF-101 ucf101.h5 --splits ucfTrainTestlist [--size WxH --frame-skip K ...]

Labels follow classInd.txt (1-based there, 0-based in the store); trainlist0{1,2,3}.txt / testlist0{1,2,3}.txt
become the store splits "split01" … "split03" (`python -m experiments.ucf101 --split 1|2|3`). The same store comes
from `python -m preprocess.folders ... --splits DIR`, with dataset "folders" instead of "ucf101".
"""

from __future__ import annotations

import os
import sys

import numpy as np

from preprocess import folders
from preprocess.ingest import IngestError, run_cli
from preprocess.synthetic import mark_synthetic, render_clip, write_video
from ttrnn.store import DEFAULT_CODEC

LIST_DIR = "ucfTrainTestlist"


def find_list_dir(src, splits_dir=None):
    """The folder holding classInd.txt: `splits_dir`, else SRC/ucfTrainTestlist, SRC/.., or SRC itself."""
    candidates = [splits_dir] if splits_dir else [os.path.join(src, LIST_DIR), os.path.join(src, "..", LIST_DIR), src]
    for folder in candidates:
        if os.path.isfile(os.path.join(folder, "classInd.txt")):
            return folder
    where = splits_dir or f"{src}/{LIST_DIR}"
    raise IngestError(f"no classInd.txt in {where}; give the official split lists with --splits ucfTrainTestlist")


def check_list_labels(list_dir, classes):
    """The 1-based labels written in trainlist0N.txt must be the classInd.txt positions of the clips' classes."""
    position = {c.lower(): i + 1 for i, c in enumerate(classes)}
    for fname in sorted(os.listdir(list_dir)):
        if not fname.lower().startswith("trainlist"):
            continue
        with open(os.path.join(list_dir, fname), encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                fields = line.split()
                if len(fields) == 2 and position.get(fields[0].split("/")[0].lower()) != int(fields[1]):
                    raise IngestError(f"{fname}:{n}: label {fields[1]} is not classInd.txt's for {fields[0]}")


def build_store(src, out, size=(160, 120), frame_skip=1, fps=None, workers=None, compression=DEFAULT_CODEC,
                limit=None, overwrite=False, progress=True, quality=None, splits_dir=None):
    """Preprocess a UCF101 tree with its official splits into `out`; returns the ingest summary."""
    list_dir = find_list_dir(src, splits_dir)
    check_list_labels(list_dir, folders.read_class_index(os.path.join(list_dir, "classInd.txt")))
    return folders.build_store(src, out, size=size, frame_skip=frame_skip, fps=fps, workers=workers,
                               compression=compression, limit=limit, overwrite=overwrite, progress=progress,
                               quality=quality,
                               splits_dir=list_dir, dataset="ucf101")


def make_demo_tree(out_dir, classes=("ApplyEyeMakeup", "HandstandPushups", "JumpingJack", "JumpRope", "YoYo"),
                   groups=6, clips_per_group=2, frames=(20, 28), size=(160, 120), seed=0):
    """A synthetic UCF101-layout tree: OUT/UCF-101/<Class>/v_<Class>_gGG_cCC.avi (class k moves as synthetic
    motion k) and OUT/ucfTrainTestlist with classInd.txt (UCF101's order: JumpingJack before JumpRope, unlike a
    case-sensitive sort) and three splits testing the 1st, 2nd and 3rd third of the groups, as UCF101's 7-group
    blocks. HandstandPushups' files are spelled v_HandStandPushups_… as in the real dataset. Returns OUT."""
    rng = np.random.default_rng(seed)
    videos, lists = os.path.join(out_dir, "UCF-101"), os.path.join(out_dir, LIST_DIR)
    os.makedirs(lists, exist_ok=True)
    entries = []
    for c, name in enumerate(classes):
        os.makedirs(os.path.join(videos, name), exist_ok=True)
        stem = "HandStandPushups" if name == "HandstandPushups" else name
        for g in range(1, groups + 1):
            for k in range(1, clips_per_group + 1):
                rel = f"{name}/v_{stem}_g{g:02d}_c{k:02d}.avi"
                length = int(rng.integers(frames[0], frames[1] + 1))
                write_video(os.path.join(videos, rel), render_clip([c], length, size, rng), fps=25)
                entries.append((rel, c + 1, g))
    mark_synthetic(videos)
    with open(os.path.join(lists, "classInd.txt"), "w") as fh:
        fh.writelines(f"{i + 1} {name}\n" for i, name in enumerate(classes))
    for split in (1, 2, 3):
        held = {g for g in range(1, groups + 1) if (g - 1) * 3 // groups == split - 1}
        with open(os.path.join(lists, f"trainlist0{split}.txt"), "w") as fh:
            fh.writelines(f"{rel} {label}\n" for rel, label, g in entries if g not in held)
        with open(os.path.join(lists, f"testlist0{split}.txt"), "w") as fh:
            fh.writelines(f"{rel}\n" for rel, _, g in entries if g in held)
    return out_dir


def main(argv=None):
    def extra(ap):
        ap.add_argument("--splits", dest="splits_dir", default=None,
                        help=f"folder with classInd.txt, trainlist0N.txt, testlist0N.txt (default SRC/{LIST_DIR})")
    return run_cli(build_store, argv, "python -m preprocess.ucf101", __doc__.split("\n\n")[0], extra_args=extra)


if __name__ == "__main__":
    sys.exit(main())

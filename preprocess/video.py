"""Decode one video file with OpenCV into uint8 RGB frames at a target size.

Pipeline per frame: decode (BGR) -> RGB -> resize (cv2.INTER_AREA, only if the size differs) -> keep or drop
(fps resampling, then every k-th frame). `decode` does it for a whole file; `FrameSampler` is that pipeline
one frame at a time, for streams (a camera, a long video). No TensorFlow here.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

VIDEO_EXTENSIONS = (".avi", ".mpg", ".mpeg", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".wmv", ".flv", ".ogv")
INTERPOLATION = cv2.INTER_AREA


class VideoError(Exception):
    """A video file cannot be decoded; `str(err)` is the reason."""


# Leading bytes of still-image files, which OpenCV's FFmpeg backend would otherwise open as 1-frame "videos".
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF87a": "GIF", b"GIF89a": "GIF",
                    b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"RIFF": None}


def image_kind(path):
    """"PNG" / "JPEG" / ... if the file starts like a still image, else None (WebP: RIFF....WEBP)."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    for sig, kind in IMAGE_SIGNATURES.items():
        if head.startswith(sig):
            if kind is None:  # RIFF holds AVI too
                return "WebP" if head[8:12] == b"WEBP" else None
            return kind
    return None


def is_video(path):
    return os.path.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


def mpeg_ps_problem(path):
    """Walk the packets of an MPEG program stream (.mpg); return a reason if the file is truncated inside a
    packet or mostly unparseable, else None. (The decoder itself silently stops at a cut or at garbage, and a
    cut exactly at a packet boundary is a valid shorter stream.) Files that are not program streams -> None."""
    with open(path, "rb") as fh:
        data = fh.read()
    n = len(data)
    if n < 4 or data[:4] != b"\x00\x00\x01\xba":
        return None  # not a program stream (e.g. an elementary stream): no opinion
    pos, skipped = 0, 0
    while pos + 4 <= n:
        if data[pos:pos + 3] != b"\x00\x00\x01" or data[pos + 3] < 0xB9:
            nxt = data.find(b"\x00\x00\x01\xba", pos + 1)  # resync at the next pack header
            skipped += (nxt if nxt >= 0 else n) - pos
            if nxt < 0:
                break
            pos = nxt
            continue
        code = data[pos + 3]
        if code == 0xBA:  # pack header: MPEG-2 (14 bytes + stuffing) or MPEG-1 (12 bytes)
            if pos + 14 > n:
                return f"truncated: file ends inside a pack header at byte {pos} of {n}"
            length = 14 + (data[pos + 13] & 7) if data[pos + 4] >> 6 == 1 else 12
        elif code == 0xB9:  # program end code
            length = 4
        else:  # system header or PES packet: 16-bit length field
            if pos + 6 > n:
                return f"truncated: file ends inside a packet header at byte {pos} of {n}"
            length = 6 + int.from_bytes(data[pos + 4:pos + 6], "big")
        if pos + length > n:
            return f"truncated: last packet needs {pos + length - n} more bytes (file has {n})"
        pos += length
    if skipped > 0.05 * n:
        return f"corrupt: {skipped} of {n} bytes are not valid MPEG program stream packets"
    return None


def open_video(path):
    """An opened `cv2.VideoCapture` of the video file `path` (the caller releases it). Raises VideoError: missing,
    empty, a still image, or not a video OpenCV can open."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError("file not found")
    if os.path.getsize(path) == 0:
        raise VideoError("empty file (0 bytes)")
    kind = image_kind(path)
    if kind:
        raise VideoError(f"a {kind} image file, not a video")
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoError("cannot open as a video (not a video file or unsupported/corrupt container)")
    return cap


def source_fps(cap):
    """The frame rate an opened capture reports, 0.0 when it reports none (or nonsense)."""
    src_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return src_fps if np.isfinite(src_fps) and src_fps > 0 else 0.0


class FrameSampler:
    """What preprocessing keeps of each decoded frame, one frame at a time: `sampler(bgr)` returns the frames the
    next decoded BGR frame contributes, uint8 RGB (H, W, 3) at `size` (W, H): none, one, or the same frame several
    times (fps resampling above the source rate). `decode` runs it over a whole file; a stream (a camera, a long
    video) runs it frame by frame, so both keep exactly the same frames.

    fps: if given (and the source has a rate `src_fps` > 0 that differs), resample in time to this rate first
    (source frame floor(j * src_fps / fps) for output j). frame_skip k then keeps frames 0, k, 2k, ... of the result.
    `decoded` counts the frames given so far.
    """

    def __init__(self, size, frame_skip=1, fps=None, src_fps=0.0):
        self.w, self.h = int(size[0]), int(size[1])
        self.k = int(frame_skip)
        if self.k < 1:
            raise ValueError("frame_skip must be >= 1")
        self.fps, self.src_fps = fps, float(src_fps)
        self.resample = fps is not None and self.src_fps > 0 and abs(float(fps) - self.src_fps) > 1e-6
        self.decoded = 0
        self._resampled = 0

    def __call__(self, bgr):
        if self.resample:
            # each source frame may be emitted 0, 1 or several times
            reps = 0
            while int(np.floor(self._resampled * self.src_fps / float(self.fps) + 1e-6)) == self.decoded:
                reps += 1
                self._resampled += 1
            times = [self._resampled - reps + r for r in range(reps)]
        else:
            times = [self.decoded]
        self.decoded += 1
        sel = [t for t in times if t % self.k == 0]
        if not sel:
            return []
        if bgr.ndim != 3 or bgr.shape[2] != 3:
            raise VideoError(f"unexpected frame shape {bgr.shape}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if rgb.shape[1] != self.w or rgb.shape[0] != self.h:
            rgb = cv2.resize(rgb, (self.w, self.h), interpolation=INTERPOLATION)
        return [rgb] * len(sel)


def decode(path, size=(160, 120), frame_skip=1, fps=None):
    """Decode `path` -> (frames uint8 (T, H, W, 3) RGB with (W, H) = size, source fps).

    fps: if given, resample in time to this rate first (source frame floor(j * src_fps / fps) for output j;
    frames are repeated when fps > src_fps). frame_skip k then keeps frames 0, k, 2k, ... of the result
    (`FrameSampler`, one frame at a time).
    Raises VideoError (unreadable, not a video, zero frames, truncated AVI or MPEG program stream).
    """
    path = os.fspath(path)
    if int(frame_skip) < 1:
        raise ValueError("frame_skip must be >= 1")
    cap = open_video(path)
    try:
        src_fps = source_fps(cap)
        header_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        sampler = FrameSampler(size, frame_skip, fps, src_fps)
        kept = []
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            kept.extend(sampler(bgr))
    finally:
        cap.release()
    n_decoded = sampler.decoded
    # AVI headers carry an exact frame count; far fewer decoded frames means a truncated/corrupt file.
    if path.lower().endswith(".avi") and header_count > 0 and n_decoded < 0.9 * header_count:
        raise VideoError(f"truncated or corrupt: decoded {n_decoded} of {header_count} frames in the header")
    if n_decoded == 0:
        raise VideoError("no decodable frames")
    if path.lower().endswith((".mpg", ".mpeg")):
        problem = mpeg_ps_problem(path)
        if problem:
            raise VideoError(problem)
    if not kept:
        raise VideoError("no frames left after resampling/frame skip")
    return np.stack(kept).astype(np.uint8, copy=False), src_fps

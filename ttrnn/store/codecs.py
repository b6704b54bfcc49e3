"""How a shard stores its frames (codec raw, lzf, gzip or jpeg) and the CRC-32 that guards each frame.

Every frame codec returns the same thing to a reader: uint8 (T, H, W, 3) RGB frames. The checksum is over the bytes
as stored (a raw frame's pixels, or a JPEG frame's file bytes), so a damaged frame is found before it is decoded.
A feature store's codec is its dtype (float16 or float32, `FEATURE_CODECS`): (T, F) feature vectors kept as a
contiguous array, like codec raw, one CRC-32 per frame's vector.
"""

from __future__ import annotations

import zlib

import numpy as np

from ttrnn.store.schema import DEFAULT_QUALITY, FEATURE_CODECS, FRAMES_PER_CHUNK, CorruptClipError


def encode_frames(frames, codec, quality=None):
    """uint8 (T, H, W, 3) RGB -> {dataset name: array} of a shard, with the per-frame `crc` uint32 (T,).

    raw / lzf / gzip: `frames` (T, H, W, 3) as given (lzf / gzip compress it when written, `write_datasets`);
    jpeg: `bytes` uint8 (N,) the frames' JPEG files back to back and `offsets` int64 (T + 1,), frame t being
    bytes[offsets[t]:offsets[t + 1]], coded at `quality` (1-100); float16 / float32 (a feature store): `frames`
    the (T, F) feature vectors in that dtype."""
    frames = np.ascontiguousarray(frames, codec if codec in FEATURE_CODECS else np.uint8)
    if codec != "jpeg":
        return {"frames": frames, "crc": np.array([zlib.crc32(f) for f in frames], np.uint32)}
    import cv2
    coded = []
    for f in frames:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        coded.append(buf.reshape(-1))
    offsets = np.zeros(len(coded) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in coded])
    return {"bytes": np.concatenate(coded), "offsets": offsets,
            "crc": np.array([zlib.crc32(c) for c in coded], np.uint32)}


def write_datasets(f, arrays, codec):
    """Create the datasets `arrays` (from `encode_frames`) in the open h5py file `f`: lzf / gzip compress
    `frames` in chunks of FRAMES_PER_CHUNK frames (a read of a few frames decompresses only their chunks); raw
    stays contiguous, so a run of frames is one read straight into a batch row."""
    kw = {}
    if codec in ("lzf", "gzip"):
        t, h, w = arrays["frames"].shape[:3]
        kw = dict(chunks=(min(FRAMES_PER_CHUNK, t), h, w, 3), compression=codec)
        if codec == "gzip":
            kw["compression_opts"] = 4
    for name, a in arrays.items():
        f.create_dataset(name, data=a, **(kw if name == "frames" else {}))


def decode_jpeg_into(data, out, check=True):
    """Decode one frame's JPEG bytes (uint8 (N,) or a memoryview) into `out` uint8 (H, W, 3) RGB, in place (no
    copy). `check`: first that the image is H x W (the buffer would take a smaller one).

    simplejpeg (libjpeg-turbo) is the decoder: it writes RGB straight into the given buffer, with output identical
    to cv2.imdecode + cvtColor and no intermediate BGR image, at less CPU per frame (docs/performance.md, "The
    frame store"; `python -m experiments.bench store`)."""
    import simplejpeg
    data = memoryview(data)
    try:
        if check and simplejpeg.decode_jpeg_header(data)[:2] != out.shape[:2]:
            raise ValueError(f"not {out.shape[1]}x{out.shape[0]}")
        simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out)
    except ValueError as e:
        raise ValueError(f"JPEG frame does not decode to {out.shape}: {e}") from None


def as_stored(frames, codec, quality=None):
    """uint8 (T, H, W, 3) frames as a store of `codec` returns them (JPEG: encoded and decoded again; the
    lossless codecs: unchanged). For inputs that bypass a store, e.g. experiments.predict decoding a video."""
    if codec != "jpeg":
        return frames
    coded = encode_frames(frames, codec, quality or DEFAULT_QUALITY)
    out = np.empty_like(np.asarray(frames, np.uint8))
    off = coded["offsets"]
    for t in range(len(out)):
        decode_jpeg_into(coded["bytes"][off[t]:off[t + 1]], out[t])
    return out


def verify_crc(clip, frames, crc, store, numbers=None):
    """Raise CorruptClipError unless each frame's bytes (a sequence of arrays) has its stored CRC-32; the error
    names the frame by its number in the clip (`numbers`, default 0, 1, ...)."""
    for j, (f, c) in enumerate(zip(frames, crc)):
        if zlib.crc32(f if isinstance(f, memoryview) else np.ascontiguousarray(f)) != int(c):
            t = j if numbers is None else int(numbers[j])
            raise CorruptClipError(f"clip {clip} in {store} is damaged: frame {t} fails its checksum")


def stored_frames(f):
    """The frames of the open shard `f` (h5py.File) as stored, for a whole-shard check: the (T, H, W, 3) array, or
    the list of T JPEG byte strings."""
    if "bytes" in f:
        data, off = f["bytes"][:], f["offsets"][:]
        return [data[off[j]:off[j + 1]] for j in range(len(off) - 1)]
    return f["frames"][:]

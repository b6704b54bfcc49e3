"""Section `store`: how fast frames come out of a store and out of a video file, and what each store codec costs.

- `store_read_{lzf,none}_{W}_workers`: frames/s of the training reader (`ttrnn.data.ReaderPool`, W = 0: in this
  process, 1 and N worker processes) reading every clip of a bench store (24 clips of 120 frames of
  `preprocess.synthetic.moving_block_frames`; `--quick` 4 of 8), lzf-compressed and uncompressed;
- `decode`: frames/s of preprocessing's decoder (`preprocess.video.decode`) on one such clip written as XVID AVI;
  all of these timed round-robin, best of `--repeats` (default 3);
- per codec (raw, lzf, gzip, jpeg95, jpeg90, and h264 through PyAV where installed: measured, not a store codec):
  `codec_{c}_bytes_per_frame` (with the ratio to raw frame bytes), `codec_{c}_encode` and `codec_{c}_decode`
  (frames/s per core: CPU time, best of N), `codec_{c}_mae` (mean absolute error vs the raw frames, levels), on 4
  generated clips or, with `--videos DIR`, on those videos decoded at 160x120;
- `jpeg_decoder_{opencv,simplejpeg}`: the JPEG-95 frames decoded by OpenCV (imdecode + BGR->RGB) and by
  simplejpeg (into the frame's row, the store's reader), CPU time, interleaved.
"""

import io
import tempfile
import time

import numpy as np

from experiments.bench.common import FRAME_SHAPE, make_store, timed_interleaved

STORE_CODECS = (("raw", None), ("lzf", None), ("gzip", None), ("jpeg", 95), ("jpeg", 90))
H264_CRF = 15                   # the error bound of the codec comparison (docs/performance.md, "Video codec")


def bench_store(args):
    """The section's rows (module docstring), in order."""
    from preprocess import synthetic, video
    from ttrnn import data

    clips, frames = (4, 8) if args.quick else (24, 120)
    repeats = args.repeats or (1 if args.quick else 3)
    workers = max(2, data.default_workers())
    plans = [data.ClipPlan(i, max_len=None) for i in range(clips)]
    pools, cases = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for compression in ("lzf", "none"):
            path = make_store(f"{tmp}/{compression}.h5", [frames] * clips, compression=compression)
            for w in (0, 1, workers):                       # 0 = in the training process
                pool = data.ReaderPool(path, workers=w)
                list(pool.imap(plans[:1], 1))               # start the workers before timing
                pools.append(pool)

                def run(pool=pool, w=w):
                    for _ in pool.imap(plans, 2 * max(1, w)):
                        pass
                cases[f"store_read_{compression}_{w}_workers"] = run
        clip = synthetic.moving_block_frames(frames, np.random.default_rng(1))[..., ::-1]
        avi = f"{tmp}/clip.avi"
        synthetic.write_video(avi, np.ascontiguousarray(clip))
        cases["decode"] = lambda: video.decode(avi)
        best = timed_interleaved(cases, repeats, warmup=0)
        for pool in pools:
            pool.close()
        for name, seconds in best.items():
            n = frames if name == "decode" else clips * frames
            yield {"name": name, "value": round(n / seconds, 1), "unit": "frames/s"}
        yield from bench_codecs(codec_clips(args.videos, frames), tmp, repeats)


def codec_clips(videos, frames):
    """The clips the codec figures are measured on: `--videos DIR`'s files decoded at 160x120 (all frames),
    else 4 clips of `frames` frames of `preprocess.synthetic.moving_block_frames`."""
    from preprocess.ingest import walk_videos
    from preprocess.synthetic import moving_block_frames
    from preprocess.video import decode

    if videos:
        paths = walk_videos(videos)
        if not paths:
            raise SystemExit(f"python -m experiments.bench: error: no videos in {videos}")
        return [decode(p, size=(FRAME_SHAPE[1], FRAME_SHAPE[0]))[0] for p in paths]
    rng = np.random.default_rng(3)
    return [moving_block_frames(frames, rng) for _ in range(4)]


def bench_codecs(clips, tmp, repeats):
    """Rows per codec of STORE_CODECS (+ h264 when PyAV is importable) on `clips` [uint8 (T, 120, 160, 3)]."""
    from ttrnn.store import FrameStore, StoreWriter, store_params

    n = sum(len(c) for c in clips)
    raw_bytes = n * int(np.prod(FRAME_SHAPE))
    results = {}
    for codec, quality in STORE_CODECS:
        name = codec if quality is None else f"{codec}{quality}"
        path = f"{tmp}/codec_{name}.h5"
        enc = dec = float("inf")
        for _ in range(repeats):  # best of N: the machine is shared
            t0 = time.process_time()
            with StoreWriter(path, store_params("bench", FRAME_SHAPE[1], FRAME_SHAPE[0], compression=codec,
                                                classes=["c"], quality=quality), overwrite=True) as w:
                for i, c in enumerate(clips):
                    w.add_clip(f"c{i:03d}", c, "c", 0, "", f"c{i}.avi", 25.0)
            enc = min(enc, time.process_time() - t0)
            with FrameStore(path) as st:
                t0 = time.process_time()
                got = [st.read(i) for i in range(len(st))]
                dec = min(dec, time.process_time() - t0)
                size = st.nbytes()
        mae = float(np.mean([np.abs(g.astype(np.int16) - c).mean() for g, c in zip(got, clips)]))
        results[name] = (size, enc, dec, mae)
    h264 = h264_figures(clips, repeats)
    if h264:
        results["h264"] = h264
    for name, (size, enc, dec, mae) in results.items():
        yield {"name": f"codec_{name}_bytes_per_frame", "value": round(size / n, 1),
               "unit": f"bytes/frame ({raw_bytes / size:.2f}x smaller than raw)"}
        yield {"name": f"codec_{name}_encode", "value": round(n / enc, 1), "unit": "frames/s per core (CPU time)"}
        yield {"name": f"codec_{name}_decode", "value": round(n / dec, 1), "unit": "frames/s per core (CPU time)"}
        yield {"name": f"codec_{name}_mae", "value": round(mae, 3), "unit": "levels, mean |frame - raw|"}
    yield from jpeg_decoders(clips, repeats)


def jpeg_decoders(clips, repeats):
    """The JPEG-95 frames decoded by OpenCV (imdecode + BGR->RGB) and by simplejpeg (into the row), interleaved."""
    import cv2

    from ttrnn.store import decode_jpeg_into, encode_frames

    frames = np.concatenate(clips)
    coded = encode_frames(frames, "jpeg", 95)
    off = coded["offsets"]
    pieces = [coded["bytes"][off[t]:off[t + 1]] for t in range(len(frames))]
    out = np.empty(FRAME_SHAPE, np.uint8)

    def opencv():
        for p in pieces:
            cv2.cvtColor(cv2.imdecode(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB, dst=out)

    def simplejpeg():
        for p in pieces:
            decode_jpeg_into(p, out)
    best = {"opencv": float("inf"), "simplejpeg": float("inf")}
    for _ in range(repeats + 2):  # interleaved, CPU time: on a loaded machine wall time measures the others
        for name, fn in (("opencv", opencv), ("simplejpeg", simplejpeg)):
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    for name, seconds in best.items():
        yield {"name": f"jpeg_decoder_{name}", "value": round(len(pieces) / seconds, 1),
               "unit": f"frames/s per core, CPU time ({best['opencv'] / seconds:.2f}x OpenCV's)"}


def h264_figures(clips, repeats, crf=H264_CRF):
    """(bytes, encode CPU s, decode CPU s, MAE) of each clip as an H.264 stream (PyAV, libx264 at `crf`,
    yuv420p, GOP 12), or None when PyAV is not installed (it is optional: measured, not a store codec)."""
    try:
        import av
    except ImportError:
        return None
    size, enc, dec, errs = 0, float("inf"), float("inf"), []
    for _ in range(repeats):
        t0, blobs = time.process_time(), []
        for c in clips:
            buf = io.BytesIO()
            with av.open(buf, "w", format="mp4") as box:
                st = box.add_stream("libx264", rate=25, options={"crf": str(crf), "g": "12", "threads": "1"})
                st.height, st.width, st.pix_fmt = c.shape[1], c.shape[2], "yuv420p"
                for f in c:
                    box.mux(st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
                box.mux(st.encode())
            blobs.append(buf.getvalue())
        enc = min(enc, time.process_time() - t0)
        t0, got = time.process_time(), []
        for b in blobs:
            with av.open(io.BytesIO(b)) as box:
                box.streams.video[0].thread_count = 1
                got.append(np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)]))
        dec = min(dec, time.process_time() - t0)
    size = sum(len(b) for b in blobs)
    errs = [np.abs(g.astype(np.int16) - c).mean() for g, c in zip(got, clips)]
    return size, enc, dec, float(np.mean(errs))

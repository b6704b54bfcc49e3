"""The frame store: decoded video clips on disk, written by `preprocess/` and read by training; and the feature
store, the same store holding per-frame feature vectors (float16 (T, F) per clip) instead of frames.

A store is an HDF5 index file `OUT` plus a folder `OUT.clips/` of shard files, one per clip, each frame coded
(raw, lzf, gzip or jpeg) and checksummed. Commits survive SIGKILL and a full disk: nothing a reader sees is ever
written in place.

Modules, by concern:
    schema      the layout, the parameters that identify a store, index rows, errors
    codecs      frame coding per codec and the per-frame CRC-32
    files       the file lock and the atomic write (+ fsync) every writer of the project uses
    writer      `write_shard` (decode workers) and `StoreWriter` (atomic commits, the lock, shard adoption)
    reader      `FrameStore` (reads, shard cache, page-cache hints, O_DIRECT through `direct_io`) and
                `check_shards` (is the shard folder beside the index, and this store's?)
    repair      `rebuild_index`: a damaged, truncated or lost index rebuilt from the shard folder
    direct_io   O_DIRECT reads of byte spans

Example::

    from ttrnn.store import FrameStore
    with FrameStore("ucf11.h5") as store:
        frames = store.read(0)                  # uint8 (T, H, W, 3) RGB, whatever the codec
    with FrameStore("ucf11-inceptionv3.h5") as store:   # python -m experiments.features ucf11.h5 ...
        features = store.read(0)                # float16 (T, 2048); store.features says how they were computed

This package imports NumPy and h5py, never TensorFlow or Keras (preprocessing workers stay light).
"""

from ttrnn.store import direct_io
from ttrnn.store.codecs import as_stored, decode_jpeg_into, encode_frames, verify_crc
from ttrnn.store.reader import OPEN_SHARDS, FrameStore, check_shards, clip_slice
from ttrnn.store.repair import rebuild_index
from ttrnn.store.schema import (
    CODECS,
    COMPRESSIONS,
    DEFAULT_CODEC,
    DEFAULT_QUALITY,
    FEATURE_CODECS,
    FRAMES_PER_CHUNK,
    INDEX_FIELDS,
    SCHEMA_VERSION,
    SHARD_SUFFIX,
    STORE_RECORD,
    CorruptClipError,
    DiskFullError,
    StoreError,
    StoreLockedError,
    clip_form,
    clip_meta,
    corrupt_clip_line,
    disk_full_error,
    feature_params,
    is_disk_full,
    is_feature_store,
    params_of,
    recoded_params,
    shard_dir,
    store_params,
)
from ttrnn.store.writer import StoreWriter, write_shard

__all__ = [
    # layout and parameters
    "SCHEMA_VERSION", "CODECS", "COMPRESSIONS", "DEFAULT_CODEC", "DEFAULT_QUALITY", "FRAMES_PER_CHUNK",
    "SHARD_SUFFIX", "STORE_RECORD", "INDEX_FIELDS", "OPEN_SHARDS", "shard_dir", "store_params", "recoded_params",
    "params_of", "clip_meta", "FEATURE_CODECS", "feature_params", "is_feature_store", "clip_form",
    # errors
    "StoreError", "CorruptClipError", "StoreLockedError", "DiskFullError", "is_disk_full", "disk_full_error",
    "corrupt_clip_line",
    # codecs
    "encode_frames", "decode_jpeg_into", "as_stored", "verify_crc",
    # writing and reading
    "write_shard", "StoreWriter", "FrameStore", "clip_slice", "direct_io",
    # first contact and repair
    "check_shards", "rebuild_index",
]

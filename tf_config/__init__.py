"""Run-time configuration applied first by every CLI, before TensorFlow starts: allocator settings
(``tf_config.memory``), thread settings and presets (``tf_config.threads``), the distribution strategy and cluster
(``tf_config.cluster``) and a quiet console (``tf_config.console``).

Imports nothing of the project; TensorFlow is imported only when a function needs it, so ``import tf_config`` is
cheap and safe before thread settings are applied.
"""

_EXPORTS = {
    "memory": ("apply_memory",),
    "threads": ("add_thread_args", "apply_threads", "resolve_threads", "current_threads", "load_preset",
                "known_presets", "physical_cores", "logical_cores", "ThreadConfigError",
                "ThreadsAlreadyInitializedError"),
    "cluster": ("add_cluster_args", "make_strategy", "ClusterInfo", "ClusterConfigError", "read_cluster",
                "shard_indices", "per_replica_batch", "per_worker_batch", "agree_on_int"),
}
__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name):
    """Lazy exports, so ``python -m tf_config.threads`` and light imports do not load the other module."""
    import importlib

    for module, names in _EXPORTS.items():
        if name in names:
            return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

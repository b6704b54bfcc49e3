"""Distribution strategy from the command line: TF_CONFIG / ``--cluster-spec`` → MultiWorkerMirroredStrategy (RING
collectives on CPU), ``--gpus N`` → MirroredStrategy, else TensorFlow's default strategy; plus the cluster pieces a
custom training loop needs under it (explicit input sharding, batch rule, agreeing on a resume epoch). The train and
predict steps themselves live beside the trainer (``experiments/steps.py``).

Order in a CLI (TensorFlow's runtime must not have started before both calls)::

    threads = tf_config.apply_threads(args)        # 1. thread pools
    info = tf_config.make_strategy(args)           # 2. strategy (connects to the other workers)
    with info.strategy.scope(): model = ...; optimizer = ...
    step = experiments.steps.make_train_step(info.strategy, model, optimizer, loss_fn, global_batch)

This module imports nothing of the project; TensorFlow is imported inside the functions that need it.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class ClusterConfigError(ValueError):
    """Bad cluster configuration: unreadable spec file, bad TF_CONFIG, worker index out of range, too few GPUs."""


@dataclass
class ClusterInfo:
    """The strategy and this process's place in the cluster.

    ``worker_index`` counts a ``chief`` task (if TF_CONFIG has one) as 0 and shifts the workers after it, so it
    runs 0..num_workers-1 and can be passed to :func:`shard_indices`. ``num_replicas`` is the global replica count
    (workers × local devices); ``kind`` is ``"default"``, ``"mirrored"`` or ``"multi_worker"``.
    """

    strategy: object
    kind: str
    num_workers: int
    worker_index: int
    is_chief: bool
    num_replicas: int
    resolver: str = "none"        # where the cluster came from: "tf_config", "cluster_spec", "slurm" or "none"

    def per_replica_batch(self, global_batch):
        """Batch size each replica's dataset must yield so one step covers ``global_batch`` examples."""
        return per_replica_batch(global_batch, self.num_replicas)

    def per_worker_batch(self, global_batch):
        """Examples one worker processes per step."""
        return per_worker_batch(global_batch, self.num_workers)

    def shard(self, indices, remainder="pad", with_mask=False):
        """This worker's equal-length share of ``indices`` (see :func:`shard_indices`)."""
        return shard_indices(indices, self.worker_index, self.num_workers, remainder, with_mask)

    def as_dict(self):
        """JSON-able summary for the run's config.json."""
        return {"kind": self.kind, "num_workers": self.num_workers, "worker_index": self.worker_index,
                "is_chief": self.is_chief, "num_replicas": self.num_replicas, "resolver": self.resolver}


CLUSTER_SOURCES = ("auto", "tf_config", "slurm", "none")
SLURM_VARS = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE")


def add_cluster_args(parser):
    """Add ``--cluster``, ``--cluster-spec FILE``, ``--worker-index I``, ``--slurm-port-base P`` and ``--gpus N``."""
    group = parser.add_argument_group("cluster")
    group.add_argument("--cluster", default="auto", choices=CLUSTER_SOURCES,
                       help="where the cluster comes from: tf_config (TF_CONFIG or --cluster-spec), slurm "
                            "(TensorFlow's SlurmClusterResolver: one srun task = one worker, task 0 = chief), "
                            "none (one process); auto (default): tf_config when set, else slurm when srun "
                            "started more than one task, else none")
    group.add_argument("--slurm-port-base", type=int, default=8888, metavar="P",
                       help="SLURM: the k-th task on a node listens on port P+k (default 8888)")
    group.add_argument("--cluster-spec", default=None, metavar="FILE",
                       help='JSON {"worker": ["host:port", ...]}; overrides the TF_CONFIG environment variable')
    group.add_argument("--worker-index", type=int, default=None, metavar="I",
                       help="this process's index in the --cluster-spec worker list (0 = chief)")
    group.add_argument("--gpus", type=int, default=None, metavar="N",
                       help="local GPUs to mirror over (N > 1 → MirroredStrategy); default: all visible GPUs "
                            "under a cluster, else TensorFlow's default placement")
    return parser


def _get(args, key):
    """Read KEY from an argparse Namespace, a dict or None."""
    if args is None:
        return None
    if isinstance(args, dict):
        return args.get(key)
    return getattr(args, key, None)


def _check_addresses(tasks, where):
    """Validate a list of "host:port" strings."""
    if not isinstance(tasks, list) or not tasks:
        raise ClusterConfigError(f"{where} must be a non-empty list of \"host:port\" strings")
    for t in tasks:
        host, sep, port = str(t).rpartition(":")
        if not isinstance(t, str) or not sep or not host or not port.isdigit():
            raise ClusterConfigError(f"{where}: {t!r} is not \"host:port\"")


def read_cluster(args=None, environ=None):
    """The cluster as a TF_CONFIG dict ``{"cluster": {...}, "task": {"type", "index"}}``, or None for no cluster.

    ``--cluster-spec FILE`` (with ``--worker-index``, default 0) wins over the TF_CONFIG environment variable.
    Raises ClusterConfigError with a one-line message for malformed input.
    """
    environ = os.environ if environ is None else environ
    spec_file = _get(args, "cluster_spec")
    index = _get(args, "worker_index")
    if spec_file:
        try:
            cluster = json.loads(Path(spec_file).read_text())
        except OSError as e:
            raise ClusterConfigError(f"cannot read cluster spec {spec_file!r}: {e.strerror or e}") from None
        except ValueError as e:
            raise ClusterConfigError(f"cluster spec {spec_file!r} is not valid JSON: {e}") from None
        if isinstance(cluster, dict) and "cluster" in cluster:  # a whole TF_CONFIG document is fine too
            cluster = cluster["cluster"]
        config = {"cluster": cluster, "task": {"type": "worker", "index": 0 if index is None else index}}
        where = f"cluster spec {spec_file!r}"
    elif environ.get("TF_CONFIG", "").strip():
        try:
            config = json.loads(environ["TF_CONFIG"])
        except ValueError as e:
            raise ClusterConfigError(f"TF_CONFIG is not valid JSON: {e}") from None
        if not isinstance(config, dict) or "cluster" not in config:
            raise ClusterConfigError("TF_CONFIG must be a JSON object with \"cluster\" and \"task\"")
        config.setdefault("task", {"type": "worker", "index": 0})
        if index is not None:
            config["task"] = {"type": config["task"].get("type", "worker"), "index": index}
        where = "TF_CONFIG"
    else:
        if index is not None:
            raise ClusterConfigError("--worker-index needs --cluster-spec or TF_CONFIG")
        return None
    cluster, task = config["cluster"], config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ClusterConfigError(f"{where}: cluster and task must be JSON objects")
    unknown = set(cluster) - {"chief", "worker"}
    if unknown:
        raise ClusterConfigError(f"{where}: only \"chief\" and \"worker\" tasks are supported, got {sorted(unknown)}")
    if "worker" not in cluster and "chief" not in cluster:
        raise ClusterConfigError(f"{where}: needs a \"worker\" list")
    for kind in ("chief", "worker"):
        if kind in cluster:
            _check_addresses(cluster[kind], f"{where} {kind}")
    if "chief" in cluster and len(cluster["chief"]) != 1:
        raise ClusterConfigError(f"{where}: at most one chief")
    ttype, tindex = task.get("type", "worker"), task.get("index", 0)
    if ttype not in cluster:
        raise ClusterConfigError(f"{where}: task type {ttype!r} is not in the cluster")
    if isinstance(tindex, bool) or not isinstance(tindex, int) or not 0 <= tindex < len(cluster[ttype]):
        raise ClusterConfigError(
            f"{where}: task index {tindex!r} out of range for {len(cluster[ttype])} {ttype} task(s)")
    return {"cluster": cluster, "task": {"type": ttype, "index": tindex}}


def _global_index(config):
    """(num_workers, worker_index, is_chief) of a TF_CONFIG dict; a chief task is index 0."""
    cluster, task = config["cluster"], config["task"]
    has_chief = "chief" in cluster
    num = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    if task["type"] == "chief":
        return num, 0, True
    index = task["index"] + (1 if has_chief else 0)
    return num, index, index == 0


def cluster_source(args=None, environ=None):
    """``"tf_config"``, ``"slurm"`` or ``"none"``: ``--cluster``, or for ``auto`` TF_CONFIG / ``--cluster-spec`` when
    set, else SLURM when ``SLURM_STEP_NUM_TASKS`` > 1 (inside ``srun``), else none. No TensorFlow import."""
    environ = os.environ if environ is None else environ
    choice = _get(args, "cluster") or "auto"
    if choice not in CLUSTER_SOURCES:
        raise ClusterConfigError(f"--cluster must be one of {', '.join(CLUSTER_SOURCES)}, got {choice!r}")
    if choice != "auto":
        return choice
    if _get(args, "cluster_spec") or environ.get("TF_CONFIG", "").strip():
        return "tf_config"
    tasks = environ.get("SLURM_STEP_NUM_TASKS", "")
    return "slurm" if tasks.isdigit() and int(tasks) > 1 else "none"


def check_slurm(args=None, environ=None):
    """The SLURM step's task count, after checking its variables and ``--slurm-port-base`` (no TensorFlow)."""
    environ = os.environ if environ is None else environ
    missing = [v for v in SLURM_VARS if not environ.get(v, "").strip()]
    if missing:
        raise ClusterConfigError(f"--cluster slurm needs a SLURM job step (srun); {', '.join(missing)} not set")
    for var in ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS"):
        if not environ[var].strip().isdigit():
            raise ClusterConfigError(f"{var}={environ[var]!r} is not a non-negative integer")
    tasks, rank = int(environ["SLURM_STEP_NUM_TASKS"]), int(environ["SLURM_PROCID"])
    if not 0 <= rank < tasks:
        raise ClusterConfigError(f"SLURM_PROCID {rank} out of range for {tasks} task(s)")
    port = _get(args, "slurm_port_base")
    port = 8888 if port is None else port
    if not 1024 <= port <= 65535 - tasks:
        raise ClusterConfigError(f"--slurm-port-base must leave room for {tasks} ports in 1024..65535, got {port}")
    return tasks


def planned_workers(args=None, environ=None):
    """How many workers the cluster will have, checked without TensorFlow (what a CLI needs before starting it)."""
    source = cluster_source(args, environ)
    if source == "slurm":
        return check_slurm(args, environ)
    config = read_cluster(args, environ) if source == "tf_config" else None
    if source == "tf_config" and config is None:
        raise ClusterConfigError("--cluster tf_config needs the TF_CONFIG environment variable or --cluster-spec")
    if source == "none" and _get(args, "worker_index") is not None:
        raise ClusterConfigError("--worker-index needs --cluster-spec or TF_CONFIG")
    return _global_index(config)[0] if config else 1


def _visible_gpus(environ):
    """GPUs on this node as SlurmClusterResolver would count them, or 0 where it cannot (no nvidia-smi)."""
    import shutil
    if "CUDA_VISIBLE_DEVICES" in environ:
        return len([d for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()])
    return None if shutil.which("nvidia-smi") else 0


def slurm_config(args=None, environ=None):
    """This SLURM task's cluster as a TF_CONFIG dict, from ``tf.distribute.cluster_resolver.SlurmClusterResolver``
    (hosts from SLURM_STEP_NODELIST, task k of a node on port base+k, rank = SLURM_PROCID = worker index)."""
    environ = os.environ if environ is None else environ
    tasks = check_slurm(args, environ)
    port = _get(args, "slurm_port_base")
    gpus = _visible_gpus(environ)
    import tensorflow as tf

    # CPU nodes: the resolver's GPU split would divide by zero (and it calls nvidia-smi when the count is not
    # given), so give it one nominal GPU per task and do not let it touch CUDA_VISIBLE_DEVICES.
    options = dict(gpus_per_node=tasks, gpus_per_task=1, auto_set_gpu=False) if gpus == 0 else \
        dict(gpus_per_node=gpus)
    try:
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=8888 if port is None else port, **options)
        cluster = resolver.cluster_spec().as_dict()
        task_type, task_id = resolver.get_task_info()
    except (RuntimeError, ValueError, ZeroDivisionError) as e:
        raise ClusterConfigError(f"SlurmClusterResolver: {str(e).splitlines()[0] if str(e) else e!r}") from None
    return {"cluster": cluster, "task": {"type": task_type, "index": task_id}}


def make_strategy(args=None):
    """Build the strategy for this process → :class:`ClusterInfo`. Call after apply_threads, before any TF op.

    - cluster configured (``--cluster-spec``, TF_CONFIG or a SLURM step, see :func:`cluster_source`):
      ``MultiWorkerMirroredStrategy`` with RING collectives
      on CPU (AUTO, i.e. NCCL, when GPUs are visible); TF_CONFIG is set from ``--cluster-spec`` so every library
      sees the same cluster;
    - ``--gpus N`` with N > 1 and no cluster: ``MirroredStrategy`` over ``/gpu:0..N-1``;
    - otherwise TensorFlow's default strategy (one device, default placement).
    """
    source = cluster_source(args)
    planned_workers(args)  # the same checks a CLI ran before TensorFlow, in case it did not
    config = slurm_config(args) if source == "slurm" else read_cluster(args) if source == "tf_config" else None
    resolver = "slurm" if source == "slurm" else "cluster_spec" if _get(args, "cluster_spec") else source
    gpus_wanted = _get(args, "gpus")
    if gpus_wanted is not None and gpus_wanted < 0:
        raise ClusterConfigError(f"--gpus must be >= 0, got {gpus_wanted}")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus_wanted is not None and gpus_wanted > len(gpus):
        raise ClusterConfigError(f"--gpus {gpus_wanted} asked for, but only {len(gpus)} GPU(s) are visible")
    try:
        if gpus_wanted is not None and gpus_wanted < len(gpus):
            tf.config.set_visible_devices(gpus[:gpus_wanted], "GPU")
            gpus = gpus[:gpus_wanted]
        if config is not None:
            os.environ["TF_CONFIG"] = json.dumps(config)
            impl = tf.distribute.experimental.CommunicationImplementation
            options = tf.distribute.experimental.CommunicationOptions(
                implementation=impl.AUTO if gpus else impl.RING)
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
            num, index, chief = _global_index(config)
            return ClusterInfo(strategy, "multi_worker", num, index, chief, strategy.num_replicas_in_sync, resolver)
        if gpus_wanted is not None and gpus_wanted > 1:
            strategy = tf.distribute.MirroredStrategy(devices=[f"/gpu:{i}" for i in range(gpus_wanted)])
            return ClusterInfo(strategy, "mirrored", 1, 0, True, strategy.num_replicas_in_sync)
    except RuntimeError as e:
        raise RuntimeError(
            f"cannot set up the distribution strategy: TensorFlow's runtime already started ({e}); call "
            f"tf_config.make_strategy right after apply_threads, before building models or datasets") from None
    strategy = tf.distribute.get_strategy()
    return ClusterInfo(strategy, "default", 1, 0, True, strategy.num_replicas_in_sync)


def per_worker_batch(global_batch, num_workers):
    """Global batch / workers; raises ClusterConfigError unless it divides evenly (keeps the loss scale exact)."""
    if global_batch < 1 or global_batch % num_workers:
        raise ClusterConfigError(
            f"global batch {global_batch} must be a positive multiple of the {num_workers} worker(s)")
    return global_batch // num_workers


def per_replica_batch(global_batch, num_replicas):
    """Global batch / replicas (what a ``distribute_datasets_from_function`` dataset yields per element)."""
    if global_batch < 1 or global_batch % num_replicas:
        raise ClusterConfigError(
            f"global batch {global_batch} must be a positive multiple of the {num_replicas} replica(s)")
    return global_batch // num_replicas


def shard_indices(indices, worker_index, num_workers, remainder="pad", with_mask=False):
    """Worker ``worker_index``'s share of ``indices`` (1-D), every worker getting the same length.

    Shard i is ``indices[i::num_workers]`` of the (padded or truncated) list, so all workers run the same number
    of steps and no collective waits for a worker that ran out of data. ``remainder="pad"`` repeats entries from
    the start of ``indices`` to fill the last round (every entry is used; training sees a few twice),
    ``"drop"`` drops the last ``len % num_workers`` entries (shuffle per epoch so different ones are dropped).
    With ``with_mask=True`` returns ``(shard, valid)`` where ``valid`` is False for padding repeats, so
    evaluation can count each entry exactly once.
    """
    indices = np.asarray(indices)
    if indices.ndim != 1:
        raise ValueError(f"indices must be 1-D, got shape {indices.shape}")
    if num_workers < 1 or not 0 <= worker_index < num_workers:
        raise ValueError(f"worker_index {worker_index} out of range for {num_workers} worker(s)")
    n = len(indices)
    if remainder == "pad":
        total = -(-n // num_workers) * num_workers
        positions = np.arange(total)
        valid = positions < n
        full = indices[positions % n] if n else indices
    elif remainder == "drop":
        total = n - n % num_workers
        full, valid = indices[:total], np.ones(total, bool)
    else:
        raise ValueError(f"remainder must be 'pad' or 'drop', got {remainder!r}")
    shard, mask = full[worker_index::num_workers], valid[worker_index::num_workers]
    return (shard, mask) if with_mask else shard


def agree_on_int(strategy, value, how="chief"):
    """Make every worker use the same integer (e.g. the epoch to resume from) → int.

    ``how``: ``"chief"`` (the chief's value), ``"min"`` or ``"max"`` over workers. A collective: every worker must
    call it at the same point. Under a single-process strategy it returns ``value``.
    """
    import tensorflow as tf

    if how not in ("chief", "min", "max"):
        raise ValueError(f"how must be 'chief', 'min' or 'max', got {how!r}")
    if strategy.num_replicas_in_sync == 1:
        return int(value)

    @tf.function
    def gather():
        per_replica = strategy.run(lambda: tf.constant([int(value)], tf.int64))
        return strategy.gather(per_replica, axis=0)

    values = gather().numpy()
    return int(values[0] if how == "chief" else values.min() if how == "min" else values.max())

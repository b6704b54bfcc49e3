"""3D-ResNets-PyTorch checkpoints (`torch.save` files) into ttrnn's 3D CNNs, without PyTorch.

A `torch.save` file (zip format, PyTorch >= 1.6) is a zip archive `<name>/data.pkl` + `<name>/data/<key>`: the
pickle holds the object tree, each tensor a call `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
...)` whose storage is a persistent id `("storage", FloatStorage, key, location, numel)` naming the raw
little-endian bytes `data/<key>`. `read_torch_file` unpickles it with a restricted Unpickler that admits only those
calls (and OrderedDict / Counter) and builds each tensor as a NumPy array; nothing else in the file runs.

`load_torch_checkpoint(model, path)` maps the reference's module names onto ours (`layer2.0.bn1` ->
`layer2_0_conv1_bn`, `downsample.0` -> `_down`, `fc` / `classifier` -> `classifier`, DenseNet's `features.`
dropped), transposes the layouts (Conv3d `(out, in, t, h, w)` -> Conv3D `(t, h, w, in, out)`, Linear
`(out, in)` -> Dense `(in, out)`), checks that every tensor and every weight of the model have their counterpart at
the right shape (one line naming the first that does not), and replaces the classifier when only the class count
differs, as the reference's `load_pretrained_model` does.
"""

import collections
import os
import pickle
import re
import zipfile

import numpy as np

__all__ = ["read_torch_file", "state_dict_of", "load_torch_checkpoint", "torch_key_to_weight", "CheckpointError",
           "FAMILIES"]

# model.name prefix (ttrnn.baselines' builders) -> the reference's `arch` family (main.py: f"{model}-{depth}")
FAMILIES = {"preact_r3d": "preresnet", "wide_r3d": "wideresnet", "resnext3d": "resnext", "r2plus1d": "resnet2p1d",
            "densenet3d": "densenet", "r3d": "resnet"}

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
           "ByteStorage": np.uint8, "BoolStorage": np.bool_, "BFloat16Storage": "bfloat16"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model (one-line message)."""


class _StorageType:
    def __init__(self, name):
        self.name = name


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """The tensor `size` viewing `storage` (a flat NumPy array) from `offset` with element `stride`s, copied."""
    if not size:
        return storage[offset:offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * storage.itemsize for s in stride))
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, requires_grad=False, hooks=None, *rest):
    return data


_ALLOWED = {("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("collections", "Counter"): collections.Counter}


class _Unpickler(pickle.Unpickler):
    """Admits only tensor rebuilding, storages and the containers a state dict or optimizer state uses."""

    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module, name):
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise CheckpointError(f"the checkpoint holds a {module}.{name} object, which this reader does not build "
                              "(only tensors, dicts and lists; save the state dict alone)")

    def persistent_load(self, pid):
        kind, storage_type, key = pid[0], pid[1], str(pid[2])
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"unsupported persistent id {pid[:2]!r} in the checkpoint")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            dtype = _DTYPES[storage_type.name]
            if dtype == "bfloat16":   # no NumPy bfloat16: the high half of a float32
                data = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                data = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))
            self.storages[key] = data
        return self.storages[key]


def read_torch_file(path):
    """The object `torch.save` wrote to `path` (zip format), tensors as NumPy arrays; raises CheckpointError."""
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80":
            raise CheckpointError(f"{path} is a legacy (pre-1.6, non-zip) torch.save file: re-save it with PyTorch "
                                  "as `torch.save(torch.load(p, map_location='cpu'), p2)` (zip is the default)")
        raise CheckpointError(f"{path} is not a torch.save file (neither zip nor legacy pickle)")
    with zipfile.ZipFile(path) as archive:
        pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise CheckpointError(f"{path} is a zip without <name>/data.pkl: not a torch.save file")
        prefix = pkl[0][:-len("data.pkl")]
        order = archive.read(f"{prefix}byteorder").decode().strip() if f"{prefix}byteorder" in archive.namelist() \
            else "little"
        if order != "little":
            raise CheckpointError(f"{path} was saved big-endian; re-save it on a little-endian machine")
        with archive.open(pkl[0]) as f:
            try:
                return _Unpickler(f, archive, prefix).load()
            except (pickle.UnpicklingError, EOFError, KeyError) as e:
                raise CheckpointError(f"{path}: corrupt torch.save file ({e})") from None


def state_dict_of(obj):
    """The `{name: array}` state dict of a checkpoint: `obj["state_dict"]` (3D-ResNets' `{arch, state_dict,
    optimizer, ...}`) or `obj` itself, with DataParallel's `module.` prefixes stripped."""
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, np.ndarray) for v in sd.values()):
        raise CheckpointError("the checkpoint is neither a state dict nor a dict with a 'state_dict' of tensors")
    return collections.OrderedDict((k[len("module."):] if k.startswith("module.") else k, v) for k, v in sd.items())


_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def _resnet_module(mod, preact):
    """models/resnet.py-style module path -> our layer name (`layer2.0.bn1` -> `layer2_0_conv1_bn`)."""
    if mod == ["fc"]:
        return "classifier"
    prefix, leaf = "", mod
    if len(mod) >= 3 and re.fullmatch(r"layer\d", mod[0]) and mod[1].isdigit():
        prefix, leaf = f"{mod[0]}_{mod[1]}_", mod[2:]
    leaf = ".".join(leaf)
    if prefix and leaf in ("downsample.0", "downsample.1"):
        return prefix + ("down" if leaf.endswith("0") else "down_bn")
    if re.fullmatch(r"conv\d(_[st])?", leaf):
        return prefix + leaf
    bn = re.fullmatch(r"bn(\d)(_[st])?", leaf)
    if bn:   # pre-activation blocks name their BN before conv K `pre{K}_bn`; the stem is always post-activation
        return prefix + (f"pre{bn[1]}_bn" if preact and prefix else f"conv{bn[1]}{bn[2] or ''}_bn")
    return None


def _densenet_module(mod):
    """models/densenet.py module path (without `features.`) -> our layer name."""
    name = ".".join(mod)
    fixed = {"conv1": "conv1", "norm1": "conv1_bn", "norm5": "norm5", "classifier": "classifier"}
    if name in fixed:
        return fixed[name]
    m = re.fullmatch(r"denseblock(\d+)\.denselayer(\d+)\.(norm|conv)(\d)", name)
    if m:
        return f"block{m[1]}_{m[2]}_conv{m[4]}" + ("_bn" if m[3] == "norm" else "")
    m = re.fullmatch(r"transition(\d+)\.(norm|conv)", name)
    if m:
        return f"transition{m[1]}" + ("_bn" if m[2] == "norm" else "")
    return None


def torch_key_to_weight(key, family):
    """`(layer name, parameter)` of our model for a reference state-dict key, parameter as PyTorch names it
    (`weight`, `bias`, `running_mean`, `running_var`); None for a key that has no counterpart
    (`num_batches_tracked`) or no mapping. `family`: a value of `FAMILIES`."""
    parts = key.split(".")
    if parts[-1] == "num_batches_tracked":
        return None
    mod = parts[:-1]
    if family == "densenet":
        layer = _densenet_module(mod[1:] if mod[:1] == ["features"] else mod)
    else:
        layer = _resnet_module(mod, preact=family == "preresnet")
    return None if layer is None else (layer, parts[-1])


def _family(model):
    for prefix, family in FAMILIES.items():
        if model.name.startswith(prefix):
            depth = re.match(r"\d+", model.name[len(prefix):])
            return family, int(depth[0]) if depth else None
    raise CheckpointError(f"model {model.name!r} is not one of ttrnn's 3D-ResNets-PyTorch families "
                          f"({', '.join(FAMILIES)})")


def _target(layer, param, value):
    """`(variable, converted array)` of Keras `layer` for the PyTorch parameter `param` holding `value`."""
    kind = type(layer).__name__
    if kind == "BatchNormalization" and param in _BN:
        return getattr(layer, _BN[param]), value
    if kind in ("Conv3D", "StridedConv3D") and param == "weight" and value.ndim == 5:
        return layer.kernel, value.transpose(2, 3, 4, 1, 0)   # (out, in, t, h, w) -> (t, h, w, in, out)
    if kind == "Dense" and param == "weight" and value.ndim == 2:
        return layer.kernel, value.T
    if kind == "Dense" and param == "bias":
        return layer.bias, value
    return None, value


def _check_arch(obj, family, depth, model):
    arch = obj.get("arch") if isinstance(obj, dict) else None
    if isinstance(arch, str) and "-" in arch:
        name, _, d = arch.rpartition("-")
        if name != family or (depth is not None and d.isdigit() and int(d) != depth):
            raise CheckpointError(f"the checkpoint is arch {arch!r}, the model {model.name} is {family}-{depth}")


def _assignments(model, sd, family):
    """[(variable, array)] for every tensor of `sd`; the classifier's pair separately (None when its class count
    differs from the model's: it is then replaced). Raises CheckpointError at the first key that does not fit."""
    layers = {layer.name: layer for layer in model.layers}
    pairs, head, replaced = [], [], None
    for key, value in sd.items():
        target = torch_key_to_weight(key, family)
        if target is None:
            if key.endswith("num_batches_tracked"):
                continue
            raise CheckpointError(f"checkpoint key {key} {tuple(value.shape)} has no counterpart in {model.name}")
        layer = layers.get(target[0])
        if layer is None:
            raise CheckpointError(f"checkpoint key {key} {tuple(value.shape)} has no layer {target[0]} in "
                                  f"{model.name} (another depth, shortcut or family?)")
        var, array = _target(layer, target[1], value)
        if var is None:
            raise CheckpointError(f"checkpoint key {key} {tuple(value.shape)} does not fit layer {layer.name} "
                                  f"({type(layer).__name__})")
        if target[0] == "classifier" and array.shape != tuple(var.shape) and array.shape[:-1] == tuple(var.shape[:-1]):
            replaced = (array.shape[-1], var.shape[-1])   # only the class count differs: a new classifier
            continue
        if tuple(array.shape) != tuple(var.shape):
            raise CheckpointError(f"checkpoint key {key} has shape {tuple(value.shape)} (ours "
                                  f"{tuple(array.shape)}), {model.name}'s {var.path} is {tuple(var.shape)}")
        (head if target[0] == "classifier" else pairs).append((var, array))
    return pairs, head, replaced


def load_torch_checkpoint(model, path, log=print):
    """Load a 3D-ResNets-PyTorch checkpoint (`torch.save` zip: `{arch, state_dict, ...}` or a bare state dict,
    `module.` prefixes allowed) into `model`, a ttrnn.baselines 3D ResNet / R(2+1)D / pre-activation / wide /
    ResNeXt / DenseNet of the same architecture. A classifier with another class count is left as built (a new
    classifier, as the reference's `load_pretrained_model`), said through `log`. Returns the model.

    Raises CheckpointError (one line) naming the first key or weight that does not fit. Nothing is assigned
    unless everything fits.
    """
    family, depth = _family(model)
    obj = read_torch_file(path)
    sd = state_dict_of(obj)
    _check_arch(obj, family, depth, model)
    pairs, head, replaced = _assignments(model, sd, family)
    assigned = {id(v) for v, _ in pairs + head}
    for var in model.weights:
        if id(var) not in assigned and not (replaced and var.path.startswith("classifier/")):
            raise CheckpointError(f"{model.name}'s {var.path} {tuple(var.shape)} has no tensor in the checkpoint "
                                  "(another depth, shortcut or family?)")
    for var, array in pairs + head:
        var.assign(array.astype(var.dtype))
    if replaced:
        log(f"{path}: the checkpoint's classifier has {replaced[0]} classes, the model {replaced[1]}: "
            f"loaded everything but the classifier, which stays newly initialized (fine-tune it)")
    if any(type(layer).__name__ == "Rescaling" and layer.name == "scale" for layer in model.layers):
        log(f"note: {model.name} scales pixels to [-1, 1]; the reference trained on mean/std-normalized frames "
            "(build it with normalization=reference_normalization())")
    return model

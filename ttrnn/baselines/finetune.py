"""3D-ResNets-PyTorch's fine-tuning (`--ft_begin_module`): train from one top-level module of the reference on and
keep everything before it frozen.

The reference's module names (`model.get_module_name`, DenseNet's `features.` dropped) in their order, mapped onto
our layer names: ResNet families `conv1` (the stem: conv1 / conv1_s / conv1_t, their BN, the max pool), `layer1` …
`layer4` (our `layerK_*`), `fc` (our `classifier`); DenseNet `conv1`, `norm1` (our `conv1_bn`), `denseblockN`
(`blockN_*`), `transitionN`, `norm5`, `classifier`. Frozen layers have `trainable = False`, which in Keras 3 also
runs BatchNormalization in inference mode: its moving statistics stay as loaded, as the reference's
`requires_grad` split does not give (it leaves BN in train mode): fine-tuning from a few clips should not move
statistics learned on a large dataset.
"""

import re

__all__ = ["RESNET_MODULES", "DENSENET_MODULES", "module_of", "check_module_name", "freeze_before"]

RESNET_MODULES = ("conv1", "layer1", "layer2", "layer3", "layer4", "fc")
DENSENET_MODULES = ("conv1", "norm1", "denseblock1", "transition1", "denseblock2", "transition2", "denseblock3",
                    "transition3", "denseblock4", "norm5", "classifier")


def _is_densenet(model):
    return model.name.startswith("densenet3d")


def check_module_name(densenet, name):
    """Raise ValueError (one line) unless `name` is a module of the family (`densenet`: DenseNet, else ResNet);
    `fc` is accepted for DenseNet's classifier too. Returns the module's index in the order."""
    modules = DENSENET_MODULES if densenet else RESNET_MODULES
    if densenet and name == "fc":
        name = "classifier"
    if name not in modules:
        raise ValueError(f"--ft-begin-module {name!r} is not a module of this model (choose from "
                         f"{', '.join(modules)})")
    return modules.index(name)


def module_of(layer_name, densenet):
    """The reference module a layer of ours belongs to (index into the family's module tuple)."""
    if densenet:
        m = re.match(r"block(\d)_", layer_name)
        if m:
            return DENSENET_MODULES.index(f"denseblock{m[1]}")
        m = re.match(r"transition(\d)", layer_name)
        if m:
            return DENSENET_MODULES.index(f"transition{m[1]}")
        for prefix, module in (("conv1_bn", "norm1"), ("norm5", "norm5"), ("classifier", "classifier")):
            if layer_name.startswith(prefix):
                return DENSENET_MODULES.index(module)
        return 0   # input scaling, conv1, pool1
    m = re.match(r"layer(\d)_", layer_name)
    if m:
        return int(m[1])
    return RESNET_MODULES.index("fc") if layer_name.startswith("classifier") else 0


def freeze_before(model, name):
    """Set `trainable = False` on every layer of `model` before the reference module `name`; returns how many
    layers with weights were frozen. Compile (or rebuild the train step) afterwards."""
    densenet = _is_densenet(model)
    begin = check_module_name(densenet, name)
    frozen = 0
    for layer in model.layers:
        if layer.weights and module_of(layer.name, densenet) < begin:
            layer.trainable = False
            frozen += 1
    return frozen

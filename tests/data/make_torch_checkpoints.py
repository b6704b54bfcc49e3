"""How tests/data/torch_*.pth were made (NOT run by the suite; needs PyTorch, which ttrnn never depends on).

In a scratch venv with torch, numpy and scikit-learn (the reference's utils.py imports it) and a checkout of
kenshohara/3D-ResNets-PyTorch at REF: build each model with the reference's own `model.generate_model`, draw
random BatchNorm statistics and affine parameters (so the check sees them), save it with the reference's own
`main.save_checkpoint` (taken out of main.py by `ast`: main.py itself imports torchvision) or as a DataParallel /
bare state dict, and record its logits on a random uint8 clip normalized by the reference's transform arithmetic
(ToTensor: / 255, ScaleValue(1), Normalize with mean.py's Kinetics mean and std).

    python make_torch_checkpoints.py OUT_DIR '[{"name": "torch_r3d10", "model": "resnet", "depth": 10,
        "classes": 4, "clip": [4, 16], "opts": {"resnet_widen_factor": 0.0625}}, {"name": "torch_r2p1d10_module",
        "model": "resnet2p1d", "depth": 10, "classes": 4, "clip": [4, 16],
        "opts": {"resnet_widen_factor": 0.03125}, "format": "module"}]'
"""
import argparse, ast, json, os, sys
from pathlib import Path
import numpy as np
import torch
REF = Path(os.environ.get("REF", "3D-ResNets-PyTorch"))   # a checkout of the reference
sys.path.insert(0, str(REF))
from model import generate_model            # the reference's
from mean import get_mean_std
src = (REF / "main.py").read_text()
fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "save_checkpoint")
ns = {"torch": torch}; exec(compile(ast.Module([fn], []), "main.py", "exec"), ns)
save_checkpoint = ns["save_checkpoint"]

def opts(model, depth, n_classes, **kw):
    o = dict(model=model, model_depth=depth, n_classes=n_classes, n_input_channels=3, resnet_shortcut="B",
             conv1_t_size=7, conv1_t_stride=1, no_max_pool=False, resnet_widen_factor=1.0, wide_resnet_k=2,
             resnext_cardinality=32)
    o.update(kw); return argparse.Namespace(**o)

def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
            if isinstance(m, torch.nn.Linear):
                m.bias.copy_(torch.randn(m.out_features, generator=g) * 0.1)

def main():
    out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
    cases = json.loads(sys.argv[2])
    for c in cases:
        torch.manual_seed(c.get("seed", 0))
        o = opts(c["model"], c["depth"], c["classes"], **c.get("opts", {}))
        if o.model == "densenet":   # model.py passes n_classes, which its DenseNet does not take (a bug there)
            from models import densenet
            kw = dict(num_classes=o.n_classes, n_input_channels=3, conv1_t_size=o.conv1_t_size,
                      conv1_t_stride=o.conv1_t_stride, no_max_pool=o.no_max_pool)
            model = (densenet.DenseNet(block_config=(6, 12, 24, 16), **c["dense"], **kw) if "dense" in c
                     else densenet.generate_model(o.model_depth, **kw))
        elif o.model == "preresnet":   # its blocks take `inplanes`, ResNet passes `in_planes=` (a bug there):
            from models import pre_act_resnet as par   # adapt the keyword only, and pass the width model.py drops
            for cls in (par.PreActivationBasicBlock, par.PreActivationBottleneck):
                if not hasattr(cls, "_orig_init"):
                    cls._orig_init = cls.__init__
                    cls.__init__ = lambda self, in_planes, planes, stride=1, downsample=None, _c=cls: \
                        _c._orig_init(self, in_planes, planes, stride, downsample)
            model = par.generate_model(o.model_depth, n_classes=o.n_classes, widen_factor=o.resnet_widen_factor,
                                       shortcut_type=o.resnet_shortcut, conv1_t_size=o.conv1_t_size,
                                       no_max_pool=o.no_max_pool)
        else:
            model = generate_model(o)
        randomize(model, c.get("seed", 0))
        model.eval()
        if c.get("format") == "module":
            model = torch.nn.DataParallel(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [50, 100])
        arch = "{}-{}".format(o.model, o.model_depth)
        fmt = c.get("format", "reference")
        if fmt == "reference":
            save_checkpoint(out / f"{c['name']}.pth", 1, arch, model, optimizer, scheduler)
        elif fmt == "module":   # the older published files: DataParallel's state dict, `module.` prefixes
            torch.save({"arch": arch, "state_dict": model.state_dict()}, out / f"{c['name']}.pth")
        else:
            torch.save(model.state_dict(), out / f"{c['name']}.pth")
        T, S = c["clip"]
        clip = np.random.default_rng(1).integers(0, 256, (2, T, S, S, 3)).astype(np.uint8)
        mean, std = get_mean_std(1, "kinetics")
        x = torch.from_numpy(clip).permute(0, 4, 1, 2, 3).float() / 255.0 * 1   # ToTensor, ScaleValue(1)
        x = (x - torch.tensor(mean).view(1, 3, 1, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1, 1)  # Normalize
        with torch.no_grad():
            logits = model(x).numpy()
        np.save(out / f"{c['name']}_clip.npy", clip); np.save(out / f"{c['name']}_logits.npy", logits)
        print(c["name"], arch, logits.shape, float(np.abs(logits).max()), flush=True)

main()

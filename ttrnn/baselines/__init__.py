"""Baselines on the same frame store, one module per family; every builder returns an uncompiled Keras model that
takes uint8 frames as read from the store and scales them itself.

- `tsn`: TSN over a `keras.applications` 2D backbone (and the ImageNet weight files, `imagenet_weights_path`).
- `c3d`: C3D (Tran et al. 2015).
- `resnet3d`, `preact_resnet3d`, `wide_resnet3d`, `resnext3d`: 3D-ResNets-PyTorch's ResNet family.
- `r2plus1d`: R(2+1)D.  `densenet3d`: 3D DenseNet-BC.
- `nonlocal_block`, `c2d_resnet50`, `i3d_resnet50`: non-local networks (video-nonlocal-net).
- `load_torch_checkpoint`: 3D-ResNets-PyTorch's published `.pth` checkpoints into those families (no PyTorch
  needed); `reference_normalization` its input convention; `freeze_before` its `--ft_begin_module`.
"""

from ttrnn.baselines.c3d import c3d
from ttrnn.baselines.densenet3d import densenet3d
from ttrnn.baselines.finetune import freeze_before
from ttrnn.baselines.nonlocal_net import NonLocal, c2d_resnet50, i3d_resnet50, inflate_2d_weights, nonlocal_block
from ttrnn.baselines.r2plus1d import r2plus1d
from ttrnn.baselines.resnet3d import preact_resnet3d, resnet3d, resnext3d, wide_resnet3d
from ttrnn.baselines.torch_checkpoint import CheckpointError, load_torch_checkpoint, read_torch_file
from ttrnn.baselines.tsn import (
                                 BACKBONES,
                                 BackbonePreprocess,
                                 MergeSegments,
                                 SegmentConsensus,
                                 WeightsError,
                                 imagenet_weights_path,
                                 load_weights,
                                 set_backbone_trainable,
                                 tsn,
)
from ttrnn.baselines.video import ClipNormalization, ZeroPadShortcut, reference_normalization, torch_param_count

__all__ = ["tsn", "c3d", "set_backbone_trainable", "imagenet_weights_path", "load_weights", "WeightsError",
           "BACKBONES", "MergeSegments", "SegmentConsensus", "BackbonePreprocess", "resnet3d", "preact_resnet3d",
           "wide_resnet3d", "resnext3d", "r2plus1d", "densenet3d", "NonLocal", "nonlocal_block", "c2d_resnet50",
           "i3d_resnet50", "inflate_2d_weights", "ZeroPadShortcut", "torch_param_count", "load_torch_checkpoint",
           "read_torch_file", "CheckpointError", "reference_normalization", "ClipNormalization", "freeze_before"]

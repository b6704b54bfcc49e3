"""Dense layers `y = activation(x W + b)` whose `(prod n, prod m)` kernel `W` is held in a tensor format: `TTDense`
(the TT-layer, the TT-MLP's hidden layer), `TRDense`, `BTDense`, `CPDense`, `HTDense`.

Over 400 lines because it is five public classes, each written out with its whole docstring (as Keras's own
layer modules); the code they share is `FormatDense` below, the kernel `ttrnn.layers.kernel.Kernel` and the
format's constructor arguments `ttrnn.layers.kernel.TTArguments` / `FormatArguments`.
"""

import math

import keras
from keras import ops

from ttrnn import formats
from ttrnn.formats import tt
from ttrnn.formats.common import is_float
from ttrnn.layers.kernel import FormatArguments, Kernel, TTArguments, exporting


class FormatDense(keras.layers.Layer):
    """A Dense layer whose kernel is in a tensor format: the weights (`build`: the kernel's factors and `bias`
    `(units,)`), the call `activation(x W + b)` through `Kernel.project` (float or uint8 `x`, `W` never formed)
    and `get_config`.

    A subclass sets `FORMAT` (a name of `ttrnn.formats.FORMAT_NAMES`) and puts the format's constructor arguments
    in front of it (`ttrnn.layers.kernel.TTArguments` / `FormatArguments`), which call this constructor with
    `input_modes, output_modes, ranks, blocks`. Every argument is documented on the public classes (e.g.
    `ttrnn.TTDense`).
    """

    FORMAT = None

    def __init__(self, input_modes, output_modes, ranks=None, blocks=None, activation=None, use_bias=True,
                 kernel_initializer=None, bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.kernel = Kernel(formats.make(self.FORMAT, input_modes, output_modes, ranks, blocks))
        self.kernel_format = self.kernel.format
        self.kernel_param_count = self.kernel_format.param_count()
        self.units = math.prod(self.kernel_format.m)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer or tt.TTGlorotNormal())
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        # TensorFlow: oneDNN beats XLA's CPU dot on the contractions (docs/performance.md); JAX has only XLA.
        self.supports_jit = keras.backend.backend() != "tensorflow"

    def build(self, input_shape):
        self.kernel_format.check_input_dim(input_shape[-1])
        self.kernel_weights = self.kernel.build(self, self.kernel_initializer, self.kernel_regularizer,
                                                self.kernel_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.units,), name="bias", initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def call(self, inputs):
        x = ops.convert_to_tensor(inputs)
        # Integer inputs are cast inside the first contraction; on the export path (`exporting`) first.
        if (is_float(x) or exporting()) and x.dtype != self.compute_dtype:
            x = ops.cast(x, self.compute_dtype)
        y = self.kernel.project(x, bounded=False)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(self.format_config())
        config.update({
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        })
        return config


@keras.saving.register_keras_serializable(package="ttrnn")
class TTDense(TTArguments, FormatDense):
    """Densely-connected layer whose kernel is a TT-matrix (the TT-layer of Novikov et al., NeurIPS 2015).

    For inputs `x` `(..., D)`, with the kernel `W` `(D, units)` and the bias `b`:

        y = activation(x W + b)

    `W` is a TT-matrix (`ttrnn.formats.tt`): `d` cores `G_k` `(r_k, n_k, m_k, r_{k+1})`, `r_0 = r_d = 1`, and over
    row-major multi-indices

        W[(i_0..i_{d-1}), (j_0..j_{d-1})] = G_0[:, i_0, j_0, :] G_1[:, i_1, j_1, :] ... G_{d-1}[:, i_{d-1}, j_{d-1}, :]

    with `sum_k r_k n_k m_k r_{k+1}` parameters. `full_kernel()` and `bias` drop into `keras.layers.Dense(units)`
    (`set_weights`), which then computes the same outputs.

    Cost: `x W` is a chain of small matmuls over the factors (`ttrnn.formats.base.Format.matmul`, multiply-adds counted
    in `ttrnn.formats.tt`), not the `D * units` of a dense kernel; `W` is never formed.

    Args:
        tt_input_shape: the input modes `n = (n_0, ..., n_{d-1})`; `prod(n)` must equal the input size `D`.
        tt_output_shape: the output modes `m`, as many as `n`; `units = prod(m)`.
        tt_ranks: the `d + 1` TT ranks `(r_0, ..., r_d)`, `r_0 = r_d = 1`.
        activation: None (default, linear) or a Keras activation.
        use_bias: whether the layer has the bias `b` (default True).
        kernel_initializer: for the kernel's factors; None: `ttrnn.tt.TTGlorotNormal` (the dense `W` has Glorot
            variance, whatever the format). Any other Keras initializer is applied to each factor on its own.
        bias_initializer: for `bias` (default "zeros").
        kernel_regularizer, kernel_constraint: applied to each factor of the kernel.
        bias_regularizer, bias_constraint: for `bias`.
        activity_regularizer: on the layer's output.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: `(..., D)`, float or uint8 (integer inputs are cast inside the first contraction).

    Returns:
        `(..., units)`.

    Attributes:
        units: `prod(m)`.
        kernel_format: the kernel's `ttrnn.formats` object.
        kernel_param_count: the number of the kernel's parameters.
        factors: the kernel's weights in the format's documented layout.
        full_kernel(): the dense `W` `(D, units)`.
        bias: `b` in Keras's layout.
        tt_cores, tt_param_count: the cores `G_k` (the same list as `factors`) and `kernel_param_count`.

    References:
        A. Novikov, D. Podoprikhin, A. Osokin, D. Vetrov. Tensorizing Neural Networks. NeurIPS 2015 (the TT-layer).
        Y. Yang, D. Krompass, V. Tresp. Tensor-Train Recurrent Neural Networks for Video Classification. ICML 2017
            (arXiv:1707.01786).
        I. Oseledets. Tensor-Train Decomposition. SIAM J. Sci. Comput. 33(5), 2011 (the format).

    Example (the UCF11 TT-MLP: 6 frames of 160 x 120 x 3 values, 345,600, to 256 units):

    >>> import numpy as np
    >>> import ttrnn
    >>> layer = ttrnn.TTDense(tt_input_shape=[48, 20, 20, 18], tt_output_shape=[4, 4, 4, 4],
    ...                       tt_ranks=[1, 4, 4, 4, 1], activation="relu")
    >>> layer.kernel_param_count
    3616
    >>> tuple(layer(np.zeros((2, 345600), "uint8")).shape)
    (2, 256)
    """

    FORMAT = "tt"


@keras.saving.register_keras_serializable(package="ttrnn")
class TRDense(FormatArguments, FormatDense):
    """Densely-connected layer whose kernel is a tensor ring (Wang et al., CVPR 2018).

    For inputs `x` `(..., D)`, with the kernel `W` `(D, units)` and the bias `b`:

        y = activation(x W + b)

    `W` is a tensor ring (`ttrnn.formats.tr`): `2d` cores `Z_k` `(r_k, dim_k, r_{k+1})` over
    `dim = (n_0, ..., n_{d-1}, m_0, ..., m_{d-1})`, the ring closed (`r_{2d} = r_0`), and

        W[(i_0..i_{d-1}), (j_0..j_{d-1})] = trace(Z_0[:, i_0, :] ... Z_{d-1}[:, i_{d-1}, :]
                                                  Z_d[:, j_0, :] ... Z_{2d-1}[:, j_{d-1}, :])

    with `sum_k r_k dim_k r_{k+1}` parameters. `full_kernel()` and `bias` drop into `keras.layers.Dense(units)`
    (`set_weights`), which then computes the same outputs.

    Cost: `x W` is a chain of small matmuls over the factors (`ttrnn.formats.base.Format.matmul`, multiply-adds counted
    in `ttrnn.formats.tt`), not the `D * units` of a dense kernel; `W` is never formed.

    Args:
        input_modes: the input modes `n = (n_0, ..., n_{d-1})`; `prod(n)` must equal the input size `D`.
        output_modes: the output modes `m`, as many as `n`; `units = prod(m)`.
        ranks: an int R (every ring rank) or the `2d` ring ranks `(r_0, ..., r_{2d-1})`; None:
            `ttrnn.formats.DEFAULT_RANKS["tr"]` (6).
        blocks: must be None (the block-term format's argument).
        activation: None (default, linear) or a Keras activation.
        use_bias: whether the layer has the bias `b` (default True).
        kernel_initializer: for the kernel's factors; None: `ttrnn.tt.TTGlorotNormal` (the dense `W` has Glorot
            variance, whatever the format). Any other Keras initializer is applied to each factor on its own.
        bias_initializer: for `bias` (default "zeros").
        kernel_regularizer, kernel_constraint: applied to each factor of the kernel.
        bias_regularizer, bias_constraint: for `bias`.
        activity_regularizer: on the layer's output.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: `(..., D)`, float or uint8 (integer inputs are cast inside the first contraction).

    Returns:
        `(..., units)`.

    Attributes:
        units: `prod(m)`.
        kernel_format: the kernel's `ttrnn.formats` object.
        kernel_param_count: the number of the kernel's parameters.
        factors: the kernel's weights in the format's documented layout.
        full_kernel(): the dense `W` `(D, units)`.
        bias: `b` in Keras's layout.

    References:
        W. Wang et al. Wide Compression: Tensor Ring Nets. CVPR 2018 (TR fully-connected and convolutional layers).
        Y. Pan et al. Compressing Recurrent Neural Networks with Tensor Ring for Action Recognition. AAAI 2019
            (TR-LSTM).
        Q. Zhao et al. Tensor Ring Decomposition. arXiv:1606.05535, 2016 (the format).

    Example (a UCF11 frame, 160 x 120 x 3 = 57,600 values, to 256 units):

    >>> import numpy as np
    >>> import ttrnn
    >>> layer = ttrnn.TRDense(input_modes=[8, 20, 20, 18], output_modes=[4, 4, 4, 4],
    ...                       ranks=6, activation="relu")
    >>> layer.kernel_param_count
    2952
    >>> tuple(layer(np.zeros((2, 57600), "uint8")).shape)
    (2, 256)
    """

    FORMAT = "tr"


@keras.saving.register_keras_serializable(package="ttrnn")
class BTDense(FormatArguments, FormatDense):
    """Densely-connected layer whose kernel is a sum of block terms (Ye et al., CVPR 2018).

    For inputs `x` `(..., D)`, with the kernel `W` `(D, units)` and the bias `b`:

        y = activation(x W + b)

    `W` is a sum of block terms (`ttrnn.formats.bt`): `blocks` Tucker terms, each a core `C_b` `(R_0, ..., R_{d-1})` and
    factors `A_bk` `(n_k, m_k, R_k)`, and

        W[(i_0..i_{d-1}), (j_0..j_{d-1})] = sum_b sum_s C_b[s_0, ..., s_{d-1}] prod_k A_bk[i_k, j_k, s_k]

    with `blocks * (sum_k n_k m_k R_k + prod_k R_k)` parameters. `full_kernel()` and `bias` drop into
    `keras.layers.Dense(units)` (`set_weights`), which then computes the same outputs.

    Cost: `x W` is a chain of small matmuls over the factors (`ttrnn.formats.base.Format.matmul`, multiply-adds counted
    in `ttrnn.formats.tt`), not the `D * units` of a dense kernel; `W` is never formed.

    Args:
        input_modes: the input modes `n = (n_0, ..., n_{d-1})` (at least 2); `prod(n)` must equal the input size `D`.
        output_modes: the output modes `m`, as many as `n`; `units = prod(m)`.
        ranks: an int R or the `d` Tucker ranks `(R_0, ..., R_{d-1})`, shared by the blocks; None:
            `ttrnn.formats.DEFAULT_RANKS["bt"]` (4).
        blocks: the number of block terms; None: `ttrnn.formats.DEFAULT_BLOCKS` (2).
        activation: None (default, linear) or a Keras activation.
        use_bias: whether the layer has the bias `b` (default True).
        kernel_initializer: for the kernel's factors; None: `ttrnn.tt.TTGlorotNormal` (the dense `W` has Glorot
            variance, whatever the format). Any other Keras initializer is applied to each factor on its own.
        bias_initializer: for `bias` (default "zeros").
        kernel_regularizer, kernel_constraint: applied to each factor of the kernel.
        bias_regularizer, bias_constraint: for `bias`.
        activity_regularizer: on the layer's output.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: `(..., D)`, float or uint8 (integer inputs are cast inside the first contraction).

    Returns:
        `(..., units)`.

    Attributes:
        units: `prod(m)`.
        kernel_format: the kernel's `ttrnn.formats` object.
        kernel_param_count: the number of the kernel's parameters.
        factors: the kernel's weights in the format's documented layout.
        full_kernel(): the dense `W` `(D, units)`.
        bias: `b` in Keras's layout.

    References:
        J. Ye et al. Learning Compact Recurrent Neural Networks with Block-Term Tensor Decomposition. CVPR 2018
            (BT-LSTM).
        L. De Lathauwer. Decompositions of a Higher-Order Tensor in Block Terms. SIAM J. Matrix Anal. Appl. 30(3), 2008
            (the format).

    Example (a UCF11 frame, 160 x 120 x 3 = 57,600 values, to 256 units):

    >>> import numpy as np
    >>> import ttrnn
    >>> layer = ttrnn.BTDense(input_modes=[8, 20, 20, 18], output_modes=[4, 4, 4, 4],
    ...                       ranks=4, blocks=2, activation="relu")
    >>> layer.kernel_param_count
    2624
    >>> tuple(layer(np.zeros((2, 57600), "uint8")).shape)
    (2, 256)
    """

    FORMAT = "bt"


@keras.saving.register_keras_serializable(package="ttrnn")
class CPDense(FormatArguments, FormatDense):
    """Densely-connected layer whose kernel is a CP (canonical polyadic) decomposition.

    For inputs `x` `(..., D)`, with the kernel `W` `(D, units)` and the bias `b`:

        y = activation(x W + b)

    `W` is a CP decomposition of rank R (`ttrnn.formats.cp`): weights `w` `(R,)` and factors `A_k` `(n_k, m_k, R)`, and

        W[(i_0..i_{d-1}), (j_0..j_{d-1})] = sum_s w_s prod_k A_k[i_k, j_k, s]

    with `R (1 + sum_k n_k m_k)` parameters. `full_kernel()` and `bias` drop into `keras.layers.Dense(units)`
    (`set_weights`), which then computes the same outputs.

    Cost: `x W` is a chain of small matmuls over the factors (`ttrnn.formats.base.Format.matmul`, multiply-adds counted
    in `ttrnn.formats.tt`), not the `D * units` of a dense kernel; `W` is never formed.

    Args:
        input_modes: the input modes `n = (n_0, ..., n_{d-1})` (at least 2); `prod(n)` must equal the input size `D`.
        output_modes: the output modes `m`, as many as `n`; `units = prod(m)`.
        ranks: the CP rank R (an int or `[R]`); None: `ttrnn.formats.DEFAULT_RANKS["cp"]` (9).
        blocks: must be None (the block-term format's argument).
        activation: None (default, linear) or a Keras activation.
        use_bias: whether the layer has the bias `b` (default True).
        kernel_initializer: for the kernel's factors; None: `ttrnn.tt.TTGlorotNormal` (the dense `W` has Glorot
            variance, whatever the format). Any other Keras initializer is applied to each factor on its own.
        bias_initializer: for `bias` (default "zeros").
        kernel_regularizer, kernel_constraint: applied to each factor of the kernel.
        bias_regularizer, bias_constraint: for `bias`.
        activity_regularizer: on the layer's output.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: `(..., D)`, float or uint8 (integer inputs are cast inside the first contraction).

    Returns:
        `(..., units)`.

    Attributes:
        units: `prod(m)`.
        kernel_format: the kernel's `ttrnn.formats` object.
        kernel_param_count: the number of the kernel's parameters.
        factors: the kernel's weights in the format's documented layout.
        full_kernel(): the dense `W` `(D, units)`.
        bias: `b` in Keras's layout.

    References:
        F. L. Hitchcock. The Expression of a Tensor or a Polyadic as a Sum of Products. J. Math. Phys. 6, 1927 (the
            format).
        T. G. Kolda, B. W. Bader. Tensor Decompositions and Applications. SIAM Review 51(3), 2009, section 3.

    Example (a UCF11 frame, 160 x 120 x 3 = 57,600 values, to 256 units):

    >>> import numpy as np
    >>> import ttrnn
    >>> layer = ttrnn.CPDense(input_modes=[8, 20, 20, 18], output_modes=[4, 4, 4, 4],
    ...                       ranks=9, activation="relu")
    >>> layer.kernel_param_count
    2385
    >>> tuple(layer(np.zeros((2, 57600), "uint8")).shape)
    (2, 256)
    """

    FORMAT = "cp"


@keras.saving.register_keras_serializable(package="ttrnn")
class HTDense(FormatArguments, FormatDense):
    """Densely-connected layer whose kernel is a hierarchical Tucker tree (Yin et al. 2020).

    For inputs `x` `(..., D)`, with the kernel `W` `(D, units)` and the bias `b`:

        y = activation(x W + b)

    `W` is a hierarchical Tucker tree (`ttrnn.formats.ht`): a balanced binary tree over the `d` mode pairs `(n_k, m_k)`,
    a leaf factor `A_k` `(n_k, m_k, r_k)` per mode pair and a transfer tensor `B_t` `(r_left, r_right, r_t)` per inner
    node, the root's rank 1; a node's matrix is

        A_t = (A_left ⊗ A_right) B_t                                    (the root's is W)

    with `sum_k n_k m_k r_k + sum_t r_left r_right r_t` parameters. `full_kernel()` and `bias` drop into
    `keras.layers.Dense(units)` (`set_weights`), which then computes the same outputs.

    Cost: `x W` is a chain of small matmuls over the factors (`ttrnn.formats.base.Format.matmul`, multiply-adds counted
    in `ttrnn.formats.tt`), not the `D * units` of a dense kernel; `W` is never formed.

    Args:
        input_modes: the input modes `n = (n_0, ..., n_{d-1})` (at least 2); `prod(n)` must equal the input size `D`.
        output_modes: the output modes `m`, as many as `n`; `units = prod(m)`.
        ranks: an int R (every node but the root) or one rank per tree node in post-order, the root's (last) 1; None:
            `ttrnn.formats.DEFAULT_RANKS["ht"]` (7).
        blocks: must be None (the block-term format's argument).
        activation: None (default, linear) or a Keras activation.
        use_bias: whether the layer has the bias `b` (default True).
        kernel_initializer: for the kernel's factors; None: `ttrnn.tt.TTGlorotNormal` (the dense `W` has Glorot
            variance, whatever the format). Any other Keras initializer is applied to each factor on its own.
        bias_initializer: for `bias` (default "zeros").
        kernel_regularizer, kernel_constraint: applied to each factor of the kernel.
        bias_regularizer, bias_constraint: for `bias`.
        activity_regularizer: on the layer's output.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: `(..., D)`, float or uint8 (integer inputs are cast inside the first contraction).

    Returns:
        `(..., units)`.

    Attributes:
        units: `prod(m)`.
        kernel_format: the kernel's `ttrnn.formats` object.
        kernel_param_count: the number of the kernel's parameters.
        factors: the kernel's weights in the format's documented layout.
        full_kernel(): the dense `W` `(D, units)`.
        bias: `b` in Keras's layout.

    References:
        M. Yin et al. Compressing Recurrent Neural Networks Using Hierarchical Tucker Tensor Decomposition.
            arXiv:2005.04366, 2020 (HT-LSTM).
        W. Hackbusch, S. Kühn. A New Scheme for the Tensor Representation. J. Fourier Anal. Appl. 15(5), 2009; L.
            Grasedyck. Hierarchical Singular Value Decomposition of Tensors. SIAM J. Matrix Anal. Appl. 31(4), 2010 (the
            format, with its textbook tree: the HT-RNN papers do not publish theirs).

    Example (a UCF11 frame, 160 x 120 x 3 = 57,600 values, to 256 units):

    >>> import numpy as np
    >>> import ttrnn
    >>> layer = ttrnn.HTDense(input_modes=[8, 20, 20, 18], output_modes=[4, 4, 4, 4],
    ...                       ranks=7, activation="relu")
    >>> layer.kernel_param_count
    2583
    >>> tuple(layer(np.zeros((2, 57600), "uint8")).shape)
    (2, 256)
    """

    FORMAT = "ht"


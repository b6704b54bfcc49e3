"""`TTDense`: a fully connected layer whose `(prod n, prod m)` kernel is a TT-matrix."""

import math

import keras
from keras import ops

from ttrnn import tt


def add_kernel_weights(layer, fmt, initializer, regularizer, constraint):
    """Create the variables of a kernel format (`ttrnn.formats`) on `layer`, in the format's order; return them."""
    inits = fmt.initializers(initializer)
    return [layer.add_weight(shape=shape, name=name, initializer=init, regularizer=regularizer,
                             constraint=constraint)
            for (name, shape), init in zip(fmt.weight_shapes(), inits)]


def add_tt_cores(layer, n, m, r, initializer, regularizer, constraint):
    """Create the d core variables `tt_core_k` `(r_k, n_k, m_k, r_{k+1})` on `layer`; return them as a list."""
    return add_kernel_weights(layer, tt.TensorTrain(n, m, r), initializer, regularizer, constraint)


def cast_input(x, dtype):
    """Cast uint8 / int inputs (raw video frames) to the layer's compute dtype."""
    x = ops.convert_to_tensor(x)
    return x if x.dtype == dtype else ops.cast(x, dtype)


@keras.saving.register_keras_serializable(package="ttrnn")
class TTDense(keras.layers.Layer):
    """Dense layer `y = activation(x @ W + b)` with `W = full(cores)` stored as TT cores.

    Args:
        tt_input_shape: input modes `n`, `prod(n)` must equal the last input dimension.
        tt_output_shape: output modes `m`; the layer has `prod(m)` units.
        tt_ranks: `d + 1` ranks with `r_0 = r_d = 1`.
        kernel_initializer: for the cores; default `TTGlorotNormal` (the dense equivalent has Glorot variance).
            A plain Keras initializer is applied to each 4-D core separately.
        kernel_regularizer / kernel_constraint: applied to each core.
    Input `(..., prod n)` float or uint8 (cast inside); output `(..., prod m)`.
    """

    def __init__(self, tt_input_shape, tt_output_shape, tt_ranks, activation=None, use_bias=True,
                 kernel_initializer=None, bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        n, m, r = tt.check_tt_shape(tt_input_shape, tt_output_shape, tt_ranks)
        self.tt_input_shape, self.tt_output_shape, self.tt_ranks = list(n), list(m), list(r)
        self.units = math.prod(m)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer or tt.TTGlorotNormal())
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.tt_param_count = tt.tt_param_count(n, m, r)
        self.supports_jit = False     # oneDNN beats XLA's CPU dot on TT contractions (see ttrnn.recurrent)

    def build(self, input_shape):
        tt.check_tt_shape(self.tt_input_shape, self.tt_output_shape, self.tt_ranks, input_dim=input_shape[-1])
        self.tt_cores = add_tt_cores(self, self.tt_input_shape, self.tt_output_shape, self.tt_ranks,
                                     self.kernel_initializer, self.kernel_regularizer, self.kernel_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.units,), name="bias", initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def full_kernel(self):
        """Dense equivalent `(prod n, prod m)` of the TT kernel."""
        return tt.full(self.tt_cores)

    def call(self, inputs):
        y = tt.tt_matmul(cast_input(inputs, self.compute_dtype), self.tt_cores)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "tt_input_shape": self.tt_input_shape,
            "tt_output_shape": self.tt_output_shape,
            "tt_ranks": self.tt_ranks,
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

"""Keras layers of our own, registered so that a saved model loads with ``keras.models.load_model``.

On the inference side: the TensorFlow engine imports this to load a model, and training builds
models with it from here, never the reverse.

Keras' ``UpSampling2D(interpolation="bilinear")`` needs the input's height and width when the
graph is traced, so a model using it takes one input size only. The finder should take any
(the photo's own shape, padded to a multiple of 16, instead of a square with bands of grey):
``Upsample2x`` resizes to twice the runtime shape, with the same bilinear, half-pixel-centre
interpolation, so its output equals ``UpSampling2D``'s bit for bit (a test checks).
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="bottlecheck")
class Upsample2x(keras.layers.Layer):
    """Bilinear upsampling by two in height and width, for inputs of any size."""

    def call(self, inputs):
        size = tf.shape(inputs)[1:3] * 2
        return tf.image.resize(inputs, size, method="bilinear")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, None if height is None else 2 * height, None if width is None else 2 * width, channels)

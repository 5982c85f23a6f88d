"""Random augmentations of training batches: brightness and contrast, blur, flip, shadows.

Each function takes a batch of float32 RGB images in [0, 1] (batch, height,
width, 3) and draws its random values per image, so one batch mixes changed
and unchanged frames. The pipeline applies them after the cache, to training
batches only, so every epoch gets fresh draws on the original frames and the
changes never add up across epochs.
"""

from __future__ import annotations

import tensorflow as tf

from autodrive.train.options import Augmentations

BRIGHTNESS_DELTA = 0.2       # largest brightness change, as a fraction of full scale
CONTRAST_RANGE = (0.7, 1.3)  # contrast factor around each image's mean
BLUR_PROBABILITY = 0.5
BLUR_SIGMA_PX = 1.0
BLUR_RADIUS_PX = 2
FLIP_PROBABILITY = 0.5
SHADOW_PROBABILITY = 0.5
SHADOW_DARKNESS = (0.4, 0.8)  # pixel factor inside a shadow


def augment_batch(images, angles, memory, augmentations: Augmentations):
    """Return (images, angles, memory) with the enabled augmentations applied.

    ``angles`` has shape (batch,); ``memory`` is None or (batch, 2 * N) with
    angles at even columns, and is mirrored with the image.
    """
    if augmentations.brightness:
        images = random_brightness_contrast(images)
    if augmentations.blur:
        images = random_blur(images)
    if augmentations.shadow:
        images = random_shadow(images)
    if augmentations.flip:
        images, angles, memory = random_flip(images, angles, memory)
    return images, angles, memory


def _per_image(images, low, high):
    """Draw one uniform value per image, shaped to broadcast over its pixels."""
    batch = tf.shape(images)[0]
    return tf.random.uniform([batch, 1, 1, 1], low, high)


def _chosen(images, probability):
    """Draw a per-image boolean that is true with ``probability``, shaped to broadcast."""
    return _per_image(images, 0.0, 1.0) < probability


def random_brightness_contrast(images):
    """Shift brightness by up to BRIGHTNESS_DELTA and scale contrast within CONTRAST_RANGE."""
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    contrast = _per_image(images, *CONTRAST_RANGE)
    brightness = _per_image(images, -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    return tf.clip_by_value((images - mean) * contrast + mean + brightness, 0.0, 1.0)


def _gaussian_kernel():
    offsets = tf.range(-BLUR_RADIUS_PX, BLUR_RADIUS_PX + 1, dtype=tf.float32)
    weights = tf.exp(-(offsets**2) / (2.0 * BLUR_SIGMA_PX**2))
    weights = weights / tf.reduce_sum(weights)
    kernel = weights[:, None] * weights[None, :]
    return tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])


def random_blur(images):
    """Apply a Gaussian blur (sigma BLUR_SIGMA_PX) to about BLUR_PROBABILITY of the images."""
    padding = [[0, 0], [BLUR_RADIUS_PX, BLUR_RADIUS_PX], [BLUR_RADIUS_PX, BLUR_RADIUS_PX], [0, 0]]
    padded = tf.pad(images, padding, mode="REFLECT")
    blurred = tf.nn.depthwise_conv2d(padded, _gaussian_kernel(), strides=[1, 1, 1, 1], padding="VALID")
    return tf.where(_chosen(images, BLUR_PROBABILITY), blurred, images)


def random_flip(images, angles, memory):
    """Mirror about FLIP_PROBABILITY of the images left to right and negate their angles."""
    chosen = _chosen(images, FLIP_PROBABILITY)
    images = tf.where(chosen, tf.reverse(images, axis=[2]), images)
    flat = tf.reshape(chosen, [-1])
    angles = tf.where(flat, -angles, angles)
    if memory is not None:
        # Memory columns alternate angle, throttle; only the angles change sign.
        sign = tf.tile(tf.constant([-1.0, 1.0]), [tf.shape(memory)[1] // 2])
        memory = tf.where(flat[:, None], memory * sign, memory)
    return images, angles, memory


def random_shadow(images):
    """Darken a random slanted band across about SHADOW_PROBABILITY of the images.

    The band lies between two lines that each run from a random point on the
    top edge to a random point on the bottom edge, like the shadow of a post.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    width_float = tf.cast(width, tf.float32)

    top = tf.sort(tf.random.uniform([batch, 2], 0.0, width_float), axis=1)
    bottom = tf.sort(tf.random.uniform([batch, 2], 0.0, width_float), axis=1)
    rows = tf.linspace(0.0, 1.0, height)[None, :, None]
    columns = tf.cast(tf.range(width), tf.float32)[None, None, :]

    left = top[:, 0, None, None] + (bottom[:, 0, None, None] - top[:, 0, None, None]) * rows
    right = top[:, 1, None, None] + (bottom[:, 1, None, None] - top[:, 1, None, None]) * rows
    inside = tf.logical_and(columns >= left, columns <= right)[..., None]

    darkness = _per_image(images, *SHADOW_DARKNESS)
    shadowed = tf.where(inside, images * darkness, images)
    return tf.where(_chosen(images, SHADOW_PROBABILITY), shadowed, images)

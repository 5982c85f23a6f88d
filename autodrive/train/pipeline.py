"""The ``tf.data`` input pipeline: JPEG files to batches of model inputs and labels.

Per example: read the file, decode the JPEG, resize to the camera size when
the tub was recorded at another size, and crop. Decoding runs in a ``map``
with a fixed number of parallel calls (``training.pipeline_threads``). On a
2-core CPU, tf.data's autotuning started threads that competed with the
model and halved the training speed from disk (docs/benchmarks/train.md), so
autotuning is off and every buffer size is fixed. Decoded frames are cached in memory as uint8 when
they fit in ``training.cache_budget_mb``. Batches are then converted to
float32 in [0, 1], augmented (training only) and encoded as labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from autodrive.train.augment import augment_batch
from autodrive.train.options import Augmentations
from autodrive.train.models import Bins
from autodrive.train.records import Examples
from autodrive.train.sidecar import IMAGE_INPUT_NAME, MEMORY_INPUT_NAME

log = logging.getLogger(__name__)

PREFETCH_BATCHES = 2
PIXEL_SCALE = 255.0


@dataclass(frozen=True)
class PipelineSettings:
    """Settings that turn examples into model inputs.

    ``width`` and ``height`` are the camera frame size the model expects
    before the crop; frames of another size are resized to it.
    """

    width: int
    height: int
    crop_top: int = 0
    crop_bottom: int = 0
    batch_size: int = 128
    threads: int = 2
    cache_budget_mb: float = 2048.0
    seed: int = 42
    model_type: str = "linear"
    angle_bins: Bins | None = None
    throttle_bins: Bins | None = None
    augmentations: Augmentations = field(default_factory=Augmentations)

    @property
    def cropped_height(self) -> int:
        return self.height - self.crop_top - self.crop_bottom

    def frame_bytes(self) -> int:
        """Return the memory one decoded, cropped uint8 frame takes in the cache."""
        return self.cropped_height * self.width * 3


def cache_fits(example_count: int, settings: PipelineSettings) -> bool:
    """Return whether ``example_count`` decoded frames fit in the cache budget."""
    return example_count * settings.frame_bytes() <= settings.cache_budget_mb * 1024 * 1024


def set_thread_counts(cpu_count: int) -> None:
    """Give TensorFlow's op thread pools one thread per CPU core.

    Must run before TensorFlow executes its first op. Inter-op parallelism
    above 2 only adds threads that compete for the same cores on a small
    machine, because the model is one chain of layers.
    """
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpu_count)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, cpu_count))
    except RuntimeError:
        # The runtime is already initialized (a second training in one
        # process); the first setting stays in force.
        log.debug("TensorFlow thread counts already set")


def _frames(examples: Examples, settings: PipelineSettings, shuffle: bool, cache: bool) -> tf.data.Dataset:
    """Return a dataset of single decoded, cropped uint8 frames with their labels."""
    columns = {
        "path": np.asarray(examples.image_paths),
        "angle": examples.angles,
        "throttle": examples.throttles,
    }
    if examples.memory is not None:
        columns["memory"] = examples.memory
    dataset = tf.data.Dataset.from_tensor_slices(columns)

    resize = (examples.image_width, examples.image_height) != (settings.width, settings.height)
    if resize:
        log.info(
            "resizing %dx%d px tub frames to the camera's %dx%d px",
            examples.image_width, examples.image_height, settings.width, settings.height,
        )

    def decode(element):
        # The accurate integer IDCT gives the same pixels as OpenCV's decoder.
        image = tf.io.decode_jpeg(tf.io.read_file(element["path"]), channels=3, dct_method="INTEGER_ACCURATE")
        if resize:
            image = tf.image.resize(image, [settings.height, settings.width], antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        image = image[settings.crop_top: settings.height - settings.crop_bottom]
        image = tf.ensure_shape(image, [settings.cropped_height, settings.width, 3])
        frame = dict(element)
        del frame["path"]
        frame["image"] = image
        return frame

    # Without a cache, the small file-name rows are shuffled before decoding
    # so that the shuffle buffer stays cheap. With a cache, the decoded frames
    # are shuffled after it, so every epoch gets a new order.
    if shuffle and not cache:
        dataset = dataset.shuffle(len(examples), seed=settings.seed, reshuffle_each_iteration=True)
    dataset = dataset.map(decode, num_parallel_calls=settings.threads, deterministic=True)
    if cache:
        dataset = dataset.cache()
        if shuffle:
            dataset = dataset.shuffle(len(examples), seed=settings.seed, reshuffle_each_iteration=True)
    return dataset


def _to_model_batch(batch, settings: PipelineSettings, augment: bool):
    """Convert a batch of uint8 frames and raw labels to (features, labels) for Keras."""
    images = tf.cast(batch["image"], tf.float32) / PIXEL_SCALE
    angles = batch["angle"]
    throttles = batch["throttle"]
    memory = batch.get("memory")

    if augment and settings.augmentations.any:
        images, angles, memory = augment_batch(images, angles, memory, settings.augmentations)

    features = {IMAGE_INPUT_NAME: images}
    if memory is not None:
        features[MEMORY_INPUT_NAME] = memory

    if settings.model_type == "categorical":
        labels = {"angle": settings.angle_bins.encode(angles), "throttle": settings.throttle_bins.encode(throttles)}
    else:
        labels = {"angle": angles[:, None], "throttle": throttles[:, None]}
    return features, labels


def _options(threads: int) -> tf.data.Options:
    options = tf.data.Options()
    options.autotune.enabled = False
    # The pipeline runs on its own pool of `threads` threads, and each of its
    # ops on one thread, so it never takes threads from the model's
    # convolutions. On 2 cores this made training from disk as fast as
    # training from arrays in memory (docs/benchmarks/train.md).
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    options.experimental_optimization.map_parallelization = False
    return options


def make_dataset(
    examples: Examples,
    settings: PipelineSettings,
    training: bool,
    cache: bool | None = None,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Return a batched dataset of (features, labels) for Keras.

    Training datasets are shuffled and augmented; validation datasets keep
    record order and are never augmented. ``cache`` None caches when the
    frames fit in the budget.
    """
    if cache is None:
        cache = cache_fits(len(examples), settings)
    dataset = _frames(examples, settings, shuffle=training, cache=cache)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(settings.batch_size, drop_remainder=False)
    dataset = dataset.map(lambda batch: _to_model_batch(batch, settings, augment=training))
    dataset = dataset.prefetch(PREFETCH_BATCHES)
    return dataset.with_options(_options(settings.threads))


def load_frames(examples: Examples, settings: PipelineSettings, limit: int | None = None) -> dict[str, np.ndarray]:
    """Return the model inputs of the first ``limit`` examples as arrays, in record order.

    Used for predictions, the representative dataset of int8 quantization and
    tests. The images are float32 in [0, 1], exactly as the model receives them.
    """
    if limit is not None:
        examples = examples.subset(np.arange(min(limit, len(examples))))
    dataset = make_dataset(examples, settings, training=False, cache=False)
    parts: dict[str, list[np.ndarray]] = {}
    for features, _ in dataset:
        for name, values in features.items():
            parts.setdefault(name, []).append(values.numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}

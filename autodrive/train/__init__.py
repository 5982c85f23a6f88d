"""Training on the desktop: tubs to a Keras model, a TFLite copy and a sidecar for the car.

Importing this package does not import TensorFlow: :mod:`autodrive.train.sidecar`,
:mod:`autodrive.train.index`, :mod:`autodrive.train.records`,
:mod:`autodrive.train.split` and :mod:`autodrive.train.trainer` work without
it, and the trainer imports TensorFlow only after the input checks passed.
"""

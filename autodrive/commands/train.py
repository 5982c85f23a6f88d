"""`autodrive train`: Train a model from tubs."""

from autodrive.commands._placeholder import placeholder

command = placeholder("train", "Train a model from tubs")

"""`autodrive sync`: Copy tubs from the car and models to it."""

from autodrive.commands._placeholder import placeholder

command = placeholder("sync", "Copy tubs from the car and models to it")

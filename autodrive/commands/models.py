"""`autodrive models`: List the trained models of a car."""

from autodrive.commands._placeholder import placeholder

command = placeholder("models", "List the trained models of a car")

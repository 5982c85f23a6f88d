"""`autodrive sim`: Record and evaluate on the built-in simulator."""

from autodrive.commands._placeholder import placeholder

command = placeholder("sim", "Record and evaluate on the built-in simulator")

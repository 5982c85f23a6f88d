"""`autodrive calibrate`: Find the steering and throttle pulse widths of a car."""

from autodrive.commands._placeholder import placeholder

command = placeholder("calibrate", "Find the steering and throttle pulse widths of a car")

"""`autodrive tub`: Inspect, clean and convert recorded tubs."""

from autodrive.commands._placeholder import placeholder

command = placeholder("tub", "Inspect, clean and convert recorded tubs")

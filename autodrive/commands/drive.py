"""`autodrive drive`: Run the drive loop: camera, web joystick, recorder, pilot and motors."""

from autodrive.commands._placeholder import placeholder

command = placeholder("drive", "Run the drive loop: camera, web joystick, recorder, pilot and motors")

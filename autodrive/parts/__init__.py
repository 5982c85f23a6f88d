"""Parts of the drive loop: cameras, actuators, web controller, recorder, pilot, safety."""

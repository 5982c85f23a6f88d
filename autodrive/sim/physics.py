"""Kinematic bicycle model of the simulated car.

The pose is the middle of the rear axle (x_m, y_m) and the heading of the car
(radians, counter-clockwise from the x axis). Steering angle -1 is full left
and 1 full right, as on the real car. Throttle -1..1 sets a target speed of
``throttle * top_speed_mps`` that the speed approaches with a first-order lag.
There is no tyre slip, so the car turns on a circle of radius
``wheelbase_m / tan(wheel_angle)`` at any speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CarParams:
    """Dimensions and limits of the simulated car (defaults: a 1/10 scale car)."""

    wheelbase_m: float = 0.25
    width_m: float = 0.2
    max_steer_deg: float = 25.0
    top_speed_mps: float = 3.0
    speed_lag_s: float = 0.4
    steer_rate_deg_s: float = 300.0


@dataclass
class CarState:
    """Pose and motion of the car at one moment."""

    x_m: float = 0.0
    y_m: float = 0.0
    heading_rad: float = 0.0
    speed_mps: float = 0.0
    wheel_angle_rad: float = 0.0  # front wheel angle, positive turning left


class BicycleModel:
    """Advances a CarState by a time step under steering and throttle commands."""

    def __init__(self, params: CarParams):
        self.params = params
        self.max_wheel_rad = math.radians(params.max_steer_deg)
        self.wheel_rate_rad_s = math.radians(params.steer_rate_deg_s)

    def step(self, state: CarState, angle: float, throttle: float, dt_s: float) -> CarState:
        """Return the state ``dt_s`` seconds later; ``angle`` and ``throttle`` are clamped to -1..1.

        The wheel angle slews towards its target at ``steer_rate_deg_s`` and is
        then held over the step. The speed follows its exact first-order lag
        solution, and the pose moves along the exact arc, so constant commands
        trace a circle however long the step.
        """
        params = self.params
        angle = min(1.0, max(-1.0, angle))
        throttle = min(1.0, max(-1.0, throttle))

        target_wheel = -angle * self.max_wheel_rad
        max_change = self.wheel_rate_rad_s * dt_s
        change = min(max_change, max(-max_change, target_wheel - state.wheel_angle_rad))
        wheel = state.wheel_angle_rad + change

        target_speed = throttle * params.top_speed_mps
        if params.speed_lag_s > 0.0:
            decay = math.exp(-dt_s / params.speed_lag_s)
            speed = target_speed + (state.speed_mps - target_speed) * decay
            travel = target_speed * dt_s + (state.speed_mps - target_speed) * params.speed_lag_s * (1.0 - decay)
        else:
            speed = target_speed
            travel = target_speed * dt_s

        turn = travel * math.tan(wheel) / params.wheelbase_m
        heading = state.heading_rad
        if abs(turn) < 1e-9:
            x = state.x_m + travel * math.cos(heading)
            y = state.y_m + travel * math.sin(heading)
        else:
            radius = travel / turn
            x = state.x_m + radius * (math.sin(heading + turn) - math.sin(heading))
            y = state.y_m - radius * (math.cos(heading + turn) - math.cos(heading))
        heading = math.remainder(heading + turn, math.tau)
        return CarState(x, y, heading, speed, wheel)

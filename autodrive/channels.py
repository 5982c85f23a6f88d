"""Names of the channels that autodrive's own parts read and write.

Donkey Car parts use the same names for the same values, so they can be
mixed with ours.
"""

CAMERA_IMAGE = "cam/image_array"        # RGB uint8 frame, H x W x 3
CAMERA_TIME = "cam/capture_time"        # time.monotonic() seconds when the frame was captured
CAMERA_FRAME = "cam/frame_number"       # frame sequence number from the camera, from 0
REPLAY_ANGLE = "replay/angle"           # user/angle recorded with the frame the replay camera outputs
REPLAY_THROTTLE = "replay/throttle"     # user/throttle recorded with that frame
REPLAY_INDEX = "replay/index"           # tub record index of that frame

USER_ANGLE = "user/angle"               # -1 full left .. 1 full right
USER_THROTTLE = "user/throttle"         # -1 full reverse .. 1 full forward
USER_MODE = "user/mode"                 # "user", "local_angle" or "local"
USER_ESTOP = "user/estop"               # True while the emergency stop is latched
USER_MAX_THROTTLE = "user/max_throttle" # 0..1 limit chosen on the web page
USER_TIME = "user/command_time"         # time.monotonic() of the driving client's last message
RECORDING = "recording"                 # True while frames are being recorded

PILOT_ANGLE = "pilot/angle"
PILOT_THROTTLE = "pilot/throttle"
PILOT_TIME = "pilot/output_time"        # time.monotonic() when the pilot produced its outputs
PILOT_INFERENCE_MS = "pilot/inference_ms"
PILOT_FRAME_AGE_MS = "pilot/frame_age_ms"

DRIVE_ANGLE = "drive/angle"             # chosen by the drive mode, before the safety stage
DRIVE_THROTTLE = "drive/throttle"
SAFE_ANGLE = "safe/angle"               # after the safety stage: what the motors get
SAFE_THROTTLE = "safe/throttle"

RECORD_COUNT = "recorder/count"
LOOP_HZ = "vehicle/loop_hz"

SIM_CTE = "sim/cte"                     # signed cross-track error, m (positive: right of the centre line)
SIM_SPEED = "sim/speed"                 # m/s
SIM_LAP = "sim/lap"                     # completed laps
SIM_OFF_TRACK = "sim/off_track"         # True while a wheel is outside the lane

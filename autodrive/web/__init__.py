"""The web controller's pieces: control protocol, shared control state, MJPEG video and the tornado server."""

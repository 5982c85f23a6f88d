"""One module per ``autodrive`` sub-command; each exposes a click ``command``."""

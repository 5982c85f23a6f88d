"""autodrive: drive, record, train and simulate small self-driving RC cars."""

__version__ = "0.1.0"

"""The one exception type the CLI reports as a single clear line."""


class GalgenError(Exception):
    """A user-facing error: its message is one sentence naming the offending path or option."""

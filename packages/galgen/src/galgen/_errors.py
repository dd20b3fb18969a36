"""The one user-facing exception type of galgen (the CLI prints it as a single line)."""


class GalgenError(Exception):
    """A user-facing error: its message is one sentence naming the offending path or option."""

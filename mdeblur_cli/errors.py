"""The package's one exception family, turned into exit code 2 by the CLI."""


class MdeblurError(Exception):
    """A user-facing error: the message is one line naming the file and the reason."""

"""The error root of the `cabine` package (command line and demo)."""


class CabineError(Exception):
    """Root of the errors raised on purpose by the command line and the demo."""


class UsageError(CabineError, ValueError):
    """An option or argument is wrong: the message names it and says why (exit code 2)."""

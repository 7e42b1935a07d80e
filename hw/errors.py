"""The error type every layer raises for bad user input.

The CLI turns a :class:`UserError` into one line on stderr and exit code 2 (SPEC section 8). It
lives in hw/ because every layer may raise it and imports only run hw <- models <- sim <- sw.
"""

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user: a message naming the cause and what to do. Never a bug."""

"""Errors the command line reports as one line (exit status 2, no traceback)."""
from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2, no traceback."""

"""What every command of this app does with bad input: one `error:` line and exit status 2.

No TensorFlow here: compare.py and report.py import it before anything heavy.
"""
import sys


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def usage_error(message):
    """argparse's `error` hook: argparse's own message as one `error:` line, exit 2."""
    print(f"error: {message} (see --help)", file=sys.stderr)
    sys.exit(2)

"""Send a script's stdout/stderr to the rule's log file (shared by workflow scripts)."""

import sys


def redirect(log_path: str) -> None:
    """Append everything printed from now on to ``log_path``."""
    fh = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives for the process
    sys.stdout = sys.stderr = fh

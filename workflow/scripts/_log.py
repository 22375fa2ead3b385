"""Run a rule's one library call with its output in the job's log (shared by the scripts).

A problem the user must fix (bad data, bad config) is written as its message alone, with
no traceback in front of it, and the job fails; Snakemake's ``show-failed-logs`` (the
default workflow profile) then prints it on the console. Anything else keeps its traceback.
"""

import sys
import traceback
from collections.abc import Callable
from typing import Any

USER_ERRORS = ("DatasetError", "ConfigError", "PredictError", "ReadError")


def run_logged(log_path: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``func(*args, **kwargs)`` with stdout/stderr appended to ``log_path``."""
    fh = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives for the process
    sys.stdout = sys.stderr = fh
    try:
        result = func(*args, **kwargs)
    except Exception as err:
        if type(err).__name__ in USER_ERRORS:
            print(f"{type(err).__name__}: {err}")
        else:
            traceback.print_exc()
        fh.flush()
        raise SystemExit(1) from None
    print("done")
    return result

"""Run a rule's one library call with its output in the job's log (shared by the scripts).

A problem the user must fix (an :class:`iman.errors.UserError`: data, config, weights,
plug-in, predict inputs, a diverging recipe, an unsafe checkpoint) is written as its message
alone, with no traceback in front of it, and the job fails; Snakemake's ``show-failed-logs`` (the
default workflow profile) then prints it on the console. Anything else keeps its traceback.
"""

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from iman.errors import UserError

# Every job imports this module before torch: idle OpenMP threads sleep instead of spinning,
# since several single-threaded jobs share the cores. The job's environment wins (a Snakemake
# profile cannot set variables; export OMP_WAIT_POLICY in the submitting shell to override).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run_logged(log_path: str, func: Callable[..., Any], *args: Any, fast_exit: bool = False,
               **kwargs: Any) -> Any:
    """Call ``func(*args, **kwargs)`` with stdout/stderr appended to ``log_path``.

    ``fast_exit``: after success, flush the log and end the process at once (``os._exit``),
    skipping the interpreter's teardown of torch (about 1.2 s per training job alone,
    docs/performance.md); every output file is closed by then.
    """
    fh = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives for the process
    sys.stdout = sys.stderr = fh
    try:
        result = func(*args, **kwargs)
    except Exception as err:
        if isinstance(err, UserError):
            print(f"{type(err).__name__}: {err}")
        else:
            traceback.print_exc()
        fh.flush()
        raise SystemExit(1) from None
    print("done")
    if fast_exit:
        fh.flush()
        os._exit(0)
    return result

"""Rule check_protocol: the config against the fingerprint, before any training job.

The warning list goes to the job's log and, once, to the console; an error (a job that would
certainly fail) fails this job, so no training job starts, and the log shows the list.
"""

import sys
from pathlib import Path

from _log import run_logged

from iman.data.protocol import format_findings, write_protocol_check

sm = snakemake  # noqa: F821
findings = run_logged(sm.log[0], write_protocol_check, Path(sm.input.fingerprint),
                      Path(sm.input.splits), sm.params.settings, Path(sm.output[0]))
print(format_findings(findings), file=sys.__stderr__)

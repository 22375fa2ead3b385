"""Rule table: one paper table from the experiment summaries of its rows."""

import json
from pathlib import Path

from _log import redirect

from iman.experiments import experiment_name, table_specs
from iman.tables import build_table, write_table

redirect(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
table = sm.wildcards.table
summaries = {Path(p).parent.name: json.loads(Path(p).read_text()) for p in sm.input}
rows = [(labels, [summaries[experiment_name(s)] for s in specs])
        for labels, specs in table_specs(sm.config, table)]
write_table(table, build_table(table, rows), Path(sm.output.csv).with_suffix(""))

# IMAN experiment workflow: data -> training loops -> margins -> evaluation -> tables/figures.
# Thin on purpose: logic lives in src/iman, rules in workflow/rules (see README.md).
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: Path(workflow.basedir) / "config" / "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        rules.tables.input,
        rules.figures.input,

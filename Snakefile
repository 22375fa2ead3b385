# IMAN experiment workflow: data -> training loops -> margins -> evaluation -> tables/figures.
# Thin on purpose: logic lives in src/iman, rules in workflow/rules (see README.md).
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from iman.config import DEMO_CONFIG, resolve_config
from iman.errors import UserError

min_version("9.0")

# The config is the experiment (iman.config.resolve_config, the same as `iman config`):
# schema defaults (the paper protocol), then the --configfile file(s) -- the embedded demo
# config/config.yaml when none is named -- then --config overrides. Nothing else leaks in.
try:
    _resolved = resolve_config(
        list(workflow.config_settings.configfiles) or [DEMO_CONFIG],
        workflow.config_settings.config,
    )
except UserError as err:  # the problem list alone, no traceback in front of it
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_resolved)

# Pretrained weights come from the cache (`iman weights fetch`), never from the network.
# They are checked where they are needed: the first untrained node of the DAG
# (get_train_inputs, workflow/rules/common.smk) checks every file the run needs (size,
# format, digest) and stops before any job, listing every fault; targets that train
# nothing (data, ingest, evaluation of trained nodes) never need them.


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/rehearse.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        rules.tables.input,
        rules.figures.input,

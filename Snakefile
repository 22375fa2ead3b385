# IMAN experiment workflow: data -> training loops -> margins -> evaluation -> tables/figures.
# Thin on purpose: logic lives in src/iman, rules in workflow/rules (see README.md).
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from iman.config import DEMO_CONFIG, ConfigError, resolve_config
from iman.experiments import used_models
from iman.weights import WeightsError, check_available

min_version("9.0")

# The config is the experiment (iman.config.resolve_config, the same as `iman config`):
# schema defaults (the paper protocol), then the --configfile file(s) -- the embedded demo
# config/config.yaml when none is named -- then --config overrides. Nothing else leaks in.
try:
    _resolved = resolve_config(
        list(workflow.config_settings.configfiles) or [DEMO_CONFIG],
        workflow.config_settings.config,
    )
except ConfigError as err:  # the problem list alone, no traceback in front of it
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_resolved)

# Pretrained weights come from the cache (`iman weights fetch`), never from the network: a
# run that needs a missing file stops here, before any job, naming every missing file.
try:
    check_available(config["model"], used_models(config))
except WeightsError as err:
    raise WorkflowError(str(err)) from None


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

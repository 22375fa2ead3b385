"""Rule frames: per-case CEUS frame indices for one (T, step, strategy)."""

from pathlib import Path

import pandas as pd
from _log import redirect

from iman.data.frames import write_frames

redirect(snakemake.log[0])  # noqa: F821
wc = snakemake.wildcards  # noqa: F821
manifest = pd.read_csv(snakemake.input.manifest, dtype={"case_id": str})  # noqa: F821
cache = Path(snakemake.input.cache)  # noqa: F821
files = {c: cache / f"{c}.npz" for c in manifest["case_id"]}
write_frames(files, Path(snakemake.output[0]), wc.strategy, int(wc.T), int(wc.step))  # noqa: F821

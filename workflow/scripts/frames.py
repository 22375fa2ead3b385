"""Rule frames: CEUS frame indices of every case for one (T, step, strategy)."""

from pathlib import Path

from _log import run_logged

from iman.data.frames import frame_picks

sm = snakemake  # noqa: F821
w = sm.wildcards
run_logged(sm.log[0], frame_picks,
           manifest=Path(sm.input.manifest),
           cache_dir=Path(sm.input.cache),
           out=Path(sm.output[0]),
           strategy=w.strategy,
           T=int(w.T),
           step=int(w.step))

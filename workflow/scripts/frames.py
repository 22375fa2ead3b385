"""Rule frames: CEUS frame indices of every case for one (T, step, strategy)."""

from pathlib import Path

from _log import run_logged

from iman.data.frames import frame_picks

sm = snakemake  # noqa: F821
w = sm.wildcards
run_logged(sm.log[0], frame_picks, Path(sm.input.manifest), Path(sm.input.cache),
           Path(sm.output[0]), w.strategy, int(w.T), int(w.step))

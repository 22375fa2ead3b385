"""What the start-up content check of the weight files costs: per file, and on the paper
protocol's dry run.

Writes paper-size files in each catalogue layout from the upstream classes installed here
(``tests/weight_files.py``: torchvision, timm; zero-filled, no download), then prints

- per file: the content check alone (:func:`iman.training.weights.content_problem`, format,
  byte ranges, tensor names and shapes against the catalogue's ``expect:``), median of
  ``--repeats`` uncached calls, and one SHA-256 of the file for comparison (the digest check
  that runs where a digest is known or recorded);
- the start-up check in-process, as the DAG process runs it for the paper's seven
  method/variant pairs: ``resolve`` (which imports torch, through the normalisation table),
  ``check_available`` (the content checks of the four files) and ``weights_key`` (the
  digests that key the nodes);
- with ``--dry-run``: the wall time of ``snakemake -n tables --configfile config/paper.yaml``
  on a phantom sheet with those files in the cache, and with ``model.pretrained: false`` (no
  weights at all). A site catalogue with the digests removed is used (these are not the
  released bytes).

    .venv/bin/python benchmarks/weights_check.py
    .venv/bin/python benchmarks/weights_check.py --dry-run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the one builder of upstream-layout files

from weight_files import write_paper_files  # noqa: E402

from iman.training import weights as w  # noqa: E402

PLACES = {  # file written by write_paper_files -> (catalogue entry, file name in the cache)
    "resnet50": ("resnet50_imagenet", "resnet50-19c8e357.pth"),
    "r50vit_npz": ("r50_vit_b16_in21k", "R50+ViT-B_16.npz"),
    "r50vit_st": ("r50_vit_b16_in21k", "vit_base_r50_s16_224.orig_in21k.safetensors"),
    "swin": ("swin_tiny_in1k", "swin_tiny_patch4_window7_224.pth"),
    "resnext101": ("resnext101_32x4d_in1k", "gluon_resnext101_32x4d-b253c8c4.pth"),
}


def time_file(path: Path, source: w.Source, repeats: int) -> tuple[float, float]:
    """(median seconds of an uncached content check, seconds of one SHA-256)."""
    times = []
    for _ in range(repeats):
        w._content_problem.cache_clear()
        t0 = time.perf_counter()
        problem = w.content_problem(path, source)
        times.append(time.perf_counter() - t0)
        assert problem is None, f"{path} {problem}"
    t0 = time.perf_counter()
    w.sha256sum(path)
    return statistics.median(times), time.perf_counter() - t0


PAIRS = [(m, "paper") for m in ("unet", "fpn", "unetpp", "deeplabv3", "transunet",
                                 "swinunet", "ggnet")]


def in_process(tmp: Path, cache: Path) -> None:
    """Time resolve, check_available and weights_key in a fresh interpreter."""
    code = f"""
import time
from iman.training import weights as w
pairs = {PAIRS!r}
t0 = time.perf_counter(); rs = [w.resolve({{"pretrained": True}}, m, v) for m, v in pairs]
t1 = time.perf_counter(); w.check_available({{"pretrained": True}}, pairs)
t2 = time.perf_counter(); keys = [w.weights_key(r) for r in rs]
t3 = time.perf_counter()
print(f"resolve {{t1 - t0:.2f}} s, check_available {{t2 - t1:.3f}} s, "
      f"weights_key {{t3 - t2:.2f}} s")
"""
    env = {**os.environ, "IMAN_WEIGHTS_DIR": str(cache),
           "IMAN_WEIGHTS_CATALOG": str(tmp / "site.yaml")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    print(f"\nstart-up check in the DAG process (7 pairs, 4 files): {out.strip()}")


def site_catalogue(tmp: Path) -> None:
    """The packaged catalogue without digests (the files here are not the released ones)."""
    site = yaml.safe_load(w.CATALOG_PATH.read_text())
    for entry in site["files"].values():
        for s in entry["sources"]:
            s["sha256"] = None
    (tmp / "site.yaml").write_text(yaml.safe_dump(site))


def place(files: dict[str, Path], cache: Path) -> None:
    """Link the written files into ``cache`` under their catalogue names."""
    cache.mkdir(parents=True, exist_ok=True)
    for key, (_, name) in PLACES.items():
        if key != "r50vit_st":  # one R50+ViT per cache: the npz, the first source
            os.link(files[key], cache / name)


def dry_run(tmp: Path, sheet: Path, cache: Path, pretrained: bool) -> float:
    """Seconds of the paper protocol's dry run of ``tables`` (it must succeed)."""
    env = {**os.environ, "IMAN_WEIGHTS_DIR": str(cache),
           "IMAN_WEIGHTS_CATALOG": str(tmp / "site.yaml")}
    model = '"pretrained": true' if pretrained else '"pretrained": false'
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(ROOT / "Snakefile"),
           "--directory", str(tmp / "run"), "-n", "--cores", "2", "tables", "--configfile",
           str(ROOT / "config" / "paper.yaml"), "--config",
           f'dataset={{"source": "sheet", "root": "{sheet}"}}', f"model={{{model}}}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return took


def main() -> None:
    """Write the files, time each check and the start-up check, optionally the dry runs."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dry-run", action="store_true", help="also time the paper dry run")
    args = ap.parse_args()
    cat = w.catalog()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        files = write_paper_files(tmp / "files")
        print(f"{'file':<46} {'MB':>6} {'content check s':>16} {'SHA-256 s':>10}")
        for key, (entry, name) in PLACES.items():
            source = next(s for s in cat[entry].sources if s.filename == name)
            check, digest = time_file(files[key], source, args.repeats)
            size = files[key].stat().st_size / 1e6
            print(f"{name:<46} {size:6.0f} {check:16.3f} {digest:10.2f}")
        site_catalogue(tmp)
        place(files, tmp / "cache")
        in_process(tmp, tmp / "cache")
        if args.dry_run:
            from iman.data.phantom import generate

            sheet = generate(tmp / "cases", n_patients=6, seed=0)
            on = dry_run(tmp, sheet, tmp / "cache", pretrained=True)
            off = dry_run(tmp, sheet, tmp / "cache", pretrained=False)
            print(f"paper dry run (tables): {on:.1f} s with the weights, {off:.1f} s with "
                  f"model.pretrained: false")


if __name__ == "__main__":
    main()

"""Import + validate throughput (rows/s) on a generated JSON Lines file, llmloop against the tool a
user would otherwise reach for, measured in the same run:

* llmloop: ``llmloop.data.importer.import_file`` — read, detect the format, validate every row (types,
  roles, turn order, empty turns), convert to canonical rows, write the version file, register it;
* baseline: ``datasets.load_dataset("json", …)`` (Arrow, what LLaMA-Factory and TRL scripts do) and
  then a pydantic model validating every row — the usual "load with datasets, check with pydantic".

Each side runs in a fresh subprocess so its peak memory (max RSS) is its own.

    .venv/bin/python benchmarks/import_validate.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("order refund delivery account invoice warranty price shipping return exchange product size colour "
         "payment card address tracking parcel store online help").split()


def make_file(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            q = " ".join(rng.choices(WORDS, k=rng.randint(5, 15)))
            a = " ".join(rng.choices(WORDS, k=rng.randint(10, 40)))
            row = {"instruction": f"Question {i}: {q}?", "input": "" if i % 3 else "context " + q, "output": a}
            f.write(json.dumps(row) + "\n")


def run_llmloop(path: str, home: str) -> dict:
    os.environ["LLMLOOP_HOME"] = home
    from llmloop.data.importer import import_file
    from llmloop.store import open_database

    db = open_database()
    t = time.perf_counter()
    report = import_file(db, path, name="bench")
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rows": report.rows_kept}


def run_baseline(path: str, home: str) -> dict:
    os.environ["HF_DATASETS_CACHE"] = home  # a cold cache: the first load is what a user waits for
    import datasets
    from pydantic import BaseModel, ConfigDict

    datasets.disable_progress_bars()

    class AlpacaRow(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        instruction: str
        input: str = ""
        output: str

    t = time.perf_counter()
    ds = datasets.load_dataset("json", data_files=path, split="train", cache_dir=home)
    bad = 0
    for row in ds:
        try:
            r = AlpacaRow.model_validate(row)
            if not r.instruction.strip() or not r.output.strip():
                bad += 1
        except Exception:  # noqa: BLE001
            bad += 1
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rows": len(ds) - bad}


def child(which: str, path: str, home: str) -> None:
    result = (run_llmloop if which == "llmloop" else run_baseline)(path, home)
    result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--child", choices=["llmloop", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.path, args.home)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        make_file(path, args.rows)
        size = path.stat().st_size / 2**20
        print(f"{args.rows:,} alpaca rows, {size:.0f} MiB JSON Lines; {os.cpu_count()} CPU(s)")
        results = {}
        for which in ("llmloop", "baseline"):
            home = Path(tmp) / which
            home.mkdir()
            out = subprocess.run([sys.executable, __file__, "--child", which, "--path", str(path), "--home", str(home)],
                                 check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            results[which] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{'':44} {'seconds':>9} {'rows/s':>10} {'rows kept':>10} {'max RSS MiB':>12}")
        names = {"llmloop": "llmloop import_file (validate+convert+store)",
                 "baseline": "datasets.load_dataset + pydantic loop"}
        for which, r in results.items():
            print(f"{names[which]:44} {r['seconds']:9.2f} {r['rows'] / r['seconds']:10,.0f} {r['rows']:10,} "
                  f"{r['max_rss_mib']:12,.0f}")
        ratio = results["baseline"]["seconds"] / results["llmloop"]["seconds"]
        print(f"llmloop is {ratio:.2f}x the throughput of datasets+pydantic; memory ratio "
              f"{results['llmloop']['max_rss_mib'] / results['baseline']['max_rss_mib']:.2f}")


if __name__ == "__main__":
    main()

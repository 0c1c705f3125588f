"""Our streamed merges against mergekit (the optional alternative): same output? time? memory?

    .venv/bin/python benchmarks/merge_vs_mergekit.py --mergekit /path/to/venv-with-mergekit/bin/mergekit-yaml

mergekit is not a dependency (it would add protobuf/sentencepiece to the environment); give the
path of a ``mergekit-yaml`` installed elsewhere, e.g. a venv that sees ours through a ``.pth`` file:
    python -m venv /tmp/mk && echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/mk/lib/python3.11/site-packages/main.pth
    /tmp/mk/bin/pip install mergekit
Three random Llama models (~100 M parameters, fp32, same tokenizer) are built once under --work.
For linear, SLERP and TIES both tools merge the same inputs, each in its own child process (peak
RSS from ``os.wait4``); the script prints the largest difference between the outputs, how many
elements differ, and the time and memory ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPES = {
    "linear": (["--models", "{a},{b}", "--weights", "0.7,0.3"],
               "models:\n  - model: {a}\n    parameters: {{weight: 0.7}}\n  - model: {b}\n    parameters: {{weight: 0.3}}\n"
               "merge_method: linear\ndtype: float32\n"),
    "slerp": (["--models", "{a},{b}", "--method", "slerp", "--t", "0.3"],
              "slices:\n  - sources:\n      - model: {a}\n        layer_range: [0, {layers}]\n      - model: {b}\n"
              "        layer_range: [0, {layers}]\nmerge_method: slerp\nbase_model: {a}\nparameters: {{t: 0.3}}\ndtype: float32\n"),
    "ties": (["--models", "{b},{c}", "--method", "ties", "--base", "{a}", "--weights", "1,1", "--density", "0.5"],
             "models:\n  - model: {b}\n    parameters: {{weight: 1.0, density: 0.5}}\n  - model: {c}\n"
             "    parameters: {{weight: 1.0, density: 0.5}}\nmerge_method: ties\nbase_model: {a}\n"
             "parameters: {{normalize: true}}\ndtype: float32\n"),
}


def build(work: Path, layers: int) -> dict[str, str]:
    from llmloop.models.tiny import TinyModelConfig, build_tiny_model

    paths = {}
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        d = work / f"model-{name}"
        if not (d / "config.json").exists():
            build_tiny_model(d, TinyModelConfig(seed=seed, hidden_size=1024, intermediate_size=2816,
                                                num_hidden_layers=layers, num_attention_heads=8, num_key_value_heads=4))
        paths[name] = str(d)
    return paths


def child(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - t0, usage.ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mergekit", required=True, help="path of a mergekit-yaml executable")
    ap.add_argument("--work", type=Path, default=Path("/tmp/llmloop_mergekit_bench"))
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()
    from llmloop.models.weights import WeightReader

    args.work.mkdir(parents=True, exist_ok=True)
    m = build(args.work, args.layers)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LLMLOOP_HOME": tempfile.mkdtemp()}
    print(f"{'method':8} {'max |diff|':>11} {'elements differing':>20} {'ours s':>7} {'mergekit s':>10} {'ours GiB':>9} {'mk GiB':>7}")
    for method, (flags, yaml) in RECIPES.items():
        ours_out, mk_out = args.work / f"ours-{method}", args.work / f"mk-{method}"
        for d in (ours_out, mk_out):
            subprocess.run(["rm", "-rf", str(d)], check=True)
        fmt = {**m, "layers": args.layers}
        t_ours, rss_ours = child([sys.executable, "-m", "llmloop.cli.main", "models", "merge", *[f.format(**fmt) for f in flags],
                                  "--no-register", "--out", str(ours_out)], env)
        cfg = args.work / f"{method}.yaml"
        cfg.write_text(yaml.format(**fmt), encoding="utf-8")
        t_mk, rss_mk = child([args.mergekit, str(cfg), str(mk_out), "--allow-crimes"], env)
        ours, theirs = WeightReader(ours_out), WeightReader(mk_out)
        worst, differing, total = 0.0, 0, 0
        for n in ours.names():
            diff = (ours.get(n).float() - theirs.get(n).float()).abs()
            worst = max(worst, float(diff.max()))
            differing += int((diff > 1e-6).sum())
            total += diff.numel()
        print(f"{method:8} {worst:11.2e} {differing:>11} of {total:<8} {t_ours:7.1f} {t_mk:10.1f} {rss_ours:9.2f} {rss_mk:7.2f}")


if __name__ == "__main__":
    main()

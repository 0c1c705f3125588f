"""MinHash near-duplicate dedup: llmloop's bulk path vs a straightforward per-document datasketch loop.

    .venv/bin/python benchmarks/dedup_minhash.py --docs 100000

Generates a synthetic corpus (random-vocabulary documents, a share of them near-duplicates of an
earlier one with a few words changed), runs both on the same documents and shingles, and prints
throughput and recall (planted near-duplicates found) as ratios from this one run.

Baseline: for every document, ``MinHash(num_perm)`` + ``update_batch`` of its shingles, then
``lsh.query`` and ``lsh.insert`` one by one (drop it when an earlier kept document is a candidate).
llmloop: ``llmloop.data.dedup.minhash_matches`` — numpy signatures for all documents at once,
``LeanMinHash`` + ``MinHashLSH.insertion_session`` bulk insert, candidates confirmed on the
estimated Jaccard similarity.
"""

from __future__ import annotations

import argparse
import random
import time


def corpus(n: int, dup_share: float, edit: float, seed: int = 0) -> tuple[list[str], dict[int, int]]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    docs: list[str] = []
    planted: dict[int, int] = {}  # duplicate index -> source index
    for i in range(n):
        if docs and rng.random() < dup_share:
            src = rng.randrange(len(docs))
            words = docs[src].split()
            for k in rng.sample(range(len(words)), max(1, int(edit * len(words)))):
                words[k] = rng.choice(vocab)
            docs.append(" ".join(words))
            planted[i] = src
        else:
            docs.append(" ".join(rng.choices(vocab, k=rng.randint(60, 120))))
    return docs, planted


def baseline(texts: list[str], threshold: float, num_perm: int) -> tuple[set[int], float]:
    from datasketch import MinHash, MinHashLSH

    from llmloop.data.dedup import shingles

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    dropped = set()
    for i, t in enumerate(texts):
        m = MinHash(num_perm=num_perm)
        m.update_batch([s.encode("utf-8") for s in shingles(t)])
        if lsh.query(m):
            dropped.add(i)
        else:
            lsh.insert(i, m)
    return dropped, time.perf_counter() - t0


def ours(texts: list[str], threshold: float, num_perm: int) -> tuple[set[int], float]:
    from llmloop.data.dedup import minhash_matches

    t0 = time.perf_counter()
    found = minhash_matches(texts, threshold, num_perm=num_perm)
    return set(found), time.perf_counter() - t0


def recall(dropped: set[int], planted: dict[int, int]) -> float:
    """Share of planted near-duplicates that were dropped. (A planted duplicate whose source was
    itself dropped still counts when dropped: it duplicates the kept original.)"""
    return len(dropped & set(planted)) / len(planted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--dup-share", type=float, default=0.2, help="share of documents that are near-duplicates")
    ap.add_argument("--edit", type=float, default=0.03, help="share of words changed in a near-duplicate")
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--num-perm", type=int, default=128)
    args = ap.parse_args()

    texts, planted = corpus(args.docs, args.dup_share, args.edit)
    print(f"corpus: {len(texts)} docs, {len(planted)} planted near-duplicates "
          f"({args.edit:.0%} of words changed), threshold {args.threshold}, num_perm {args.num_perm}")
    ours(texts[:2000], args.threshold, args.num_perm)  # warm imports
    baseline(texts[:2000], args.threshold, args.num_perm)
    d_ours, t_ours = ours(texts, args.threshold, args.num_perm)
    d_base, t_base = baseline(texts, args.threshold, args.num_perm)
    false_ours = len(d_ours - set(planted))
    false_base = len(d_base - set(planted))
    print(f"{'':10} {'seconds':>9} {'docs/s':>10} {'recall':>8} {'dropped':>8} {'not planted':>12}")
    for name, d, t, f in (("baseline", d_base, t_base, false_base), ("llmloop", d_ours, t_ours, false_ours)):
        print(f"{name:10} {t:9.2f} {len(texts) / t:10.0f} {recall(d, planted):8.4f} {len(d):8d} {f:12d}")
    print(f"speed-up llmloop/baseline: {t_base / t_ours:.2f}x   "
          f"recall ratio: {recall(d_ours, planted) / recall(d_base, planted):.4f}")


if __name__ == "__main__":
    main()

"""Training throughput (tokens/s) of the cpu-profile LMs of Part V, measured in one run.

Prints, for the teacher ladder and the students: SFT training tokens/s (forward,
backward, AdamW step, fresh oracle samples included), KD training tokens/s of a
student with a teacher, and the speed-up of the KV-cached sampler over
re-running the prefix. Usage: .venv/bin/python benchmarks/bench_lm.py [--steps 30]
"""

import argparse
import time

import torch

from kdlib.lm.methods import SFT, TokenKD
from kdlib.lm.models import STUDENTS, TEACHERS, build_lm, count_parameters, oracle_stream
from kdlib.lm.oracle import MixtureHMMOracle
from kdlib.lm.sampling import sample
from kdlib.train import train


def tokens_per_second(student, method, data, steps, teacher=None, batch_tokens=None):
    train(student, method, data, teacher=teacher, steps=3, progress=False)  # warm-up
    start = time.perf_counter()
    train(student, method, data, teacher=teacher, steps=steps, lr=1e-3, progress=False)
    return steps * batch_tokens / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=48)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    oracle = MixtureHMMOracle(seed=0)
    data = oracle_stream(oracle, args.batch_size, args.seq_len)
    batch_tokens = args.batch_size * args.seq_len
    print(f"threads={args.threads} batch={args.batch_size}x{args.seq_len} tokens, steps={args.steps}")
    print(f"{'model':<18}{'params':>9}{'SFT tok/s':>12}")
    models = {f"teacher {k}": v for k, v in TEACHERS.items()} | {f"student {k}": v for k, v in STUDENTS.items()}
    built = {}
    for name, arch in models.items():
        built[name] = build_lm(vocab_size=oracle.vocab_size, **arch)
        tps = tokens_per_second(built[name], SFT(oracle.n_vocab), data, args.steps, batch_tokens=batch_tokens)
        print(f"{name:<18}{count_parameters(built[name]):>9,}{tps:>12,.0f}")
    print("KD (forward KL, teacher forward included):")
    for teacher in ("teacher small", "teacher medium"):
        for student in ("student xs", "student s"):
            tps = tokens_per_second(built[student], TokenKD(oracle.n_vocab, "fkl"), data, args.steps,
                                    teacher=built[teacher].eval(), batch_tokens=batch_tokens)
            print(f"  {teacher} -> {student}: {tps:,.0f} tok/s")
    prompt = oracle.sample(args.batch_size, 16)
    times = {}
    for use_cache in (True, False):
        start = time.perf_counter()
        sample(built["student xs"], prompt, 32, n_vocab=oracle.n_vocab, use_cache=use_cache,
               generator=torch.Generator().manual_seed(0))
        times[use_cache] = time.perf_counter() - start
    print(f"sampling {args.batch_size} x 32 new tokens (student xs): cached {times[True]:.3f}s, "
          f"uncached {times[False]:.3f}s, ratio {times[False] / times[True]:.1f}x")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""python_bench.py: calls per second and latency from the Python client.

usage: python_bench.py -s SOCKET -m TARGET -n CALLS -c CONCURRENCY
                       [--mode sync|async] [-w WARMUP] [-p PROMPT]

sync: one llmgate.Client shared by CONCURRENCY threads; async: one
llmgate.AsyncClient with CONCURRENCY tasks. Either way one connection,
as llmgate-bench -C 1. Prints one JSON line like llmgate-bench --json:
calls, concurrency, calls_per_s, p50_us, p99_us, max_us, failed.
Benchmarks print numbers; nothing here passes or fails on speed.
"""
import argparse
import asyncio
import json
import threading
import time

import llmgate


def summary(mode, n, c, lat, took, failed):
    lat.sort()

    def pct(p):
        return int(lat[min(len(lat) - 1, int(len(lat) * p))] * 1e6) \
            if lat else 0
    return {"client": "python-" + mode, "calls": n, "concurrency": c,
            "calls_per_s": round(len(lat) / took, 1) if took > 0 else 0,
            "p50_us": pct(0.5), "p99_us": pct(0.99),
            "max_us": int(lat[-1] * 1e6) if lat else 0, "failed": failed}


def run_sync(a):
    client = llmgate.Client(a.socket)
    for _ in range(a.warmup):
        client.call(a.prompt, models=[a.model])
    lat, failed, lock = [], [0], threading.Lock()
    left = [a.n]

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            t0 = time.perf_counter()
            try:
                client.call(a.prompt, models=[a.model])
            except llmgate.LlmgateError:
                with lock:
                    failed[0] += 1
                continue
            d = time.perf_counter() - t0
            with lock:
                lat.append(d)
    ts = [threading.Thread(target=worker) for _ in range(a.c)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - t0
    client.close()
    return summary("sync", a.n, a.c, lat, took, failed[0])


async def run_async(a):
    client = llmgate.AsyncClient(a.socket)
    for _ in range(a.warmup):
        await client.call(a.prompt, models=[a.model])
    lat, failed = [], [0]
    left = [a.n]

    async def worker():
        while left[0] > 0:
            left[0] -= 1
            t0 = time.perf_counter()
            try:
                await client.call(a.prompt, models=[a.model])
            except llmgate.LlmgateError:
                failed[0] += 1
                continue
            lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(a.c)))
    took = time.perf_counter() - t0
    await client.close()
    return summary("async", a.n, a.c, lat, took, failed[0])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-s", "--socket")
    p.add_argument("-m", "--model", required=True)
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("-c", type=int, default=1)
    p.add_argument("-w", "--warmup", type=int, default=50)
    p.add_argument("-p", "--prompt", default="hello")
    p.add_argument("--mode", choices=("sync", "async"), default="sync")
    a = p.parse_args()
    r = run_sync(a) if a.mode == "sync" else asyncio.run(run_async(a))
    print(json.dumps(r))


if __name__ == "__main__":
    main()

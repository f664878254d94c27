#!/usr/bin/env python3
"""bench/pool_bench.py - the pool's overhead against stdio (docs/PERFORMANCE.md).

usage: bench/pool_bench.py SDRT [N]
Starts its own redis-server on a loopback port. Measures, for host.health:
  - round trip, one request at a time (median, p99), `sdrt serve` vs
    `sdrt submit` -> Redis -> 1 `sdrt worker`;
  - requests/s with N requests written at once: serve, and the pool with
    1 and 3 workers."""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

SDRT = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 3000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def round_trips(cmd, n=300, tag="r"):
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         bufsize=1)
    ts = []
    for i in range(n + 20):
        t = time.perf_counter()
        p.stdin.write('{"type":"host.health","request_id":"%s%d"}\n' % (tag, i))
        p.stdin.flush()
        json.loads(p.stdout.readline())
        if i >= 20:
            ts.append(time.perf_counter() - t)
    p.stdin.close()
    p.wait()
    ts.sort()
    return statistics.median(ts) * 1e3, ts[int(len(ts) * 0.99)] * 1e3


def throughput(cmd, n, tag):
    # fresh ids: the pool answers a repeated request_id from its final marker
    text = "".join('{"type":"host.health","request_id":"%s%d"}\n' % (tag, i) for i in range(n))
    t = time.perf_counter()
    out = subprocess.run(cmd, input=text, capture_output=True, text=True).stdout
    dt = time.perf_counter() - t
    got = sum(1 for l in out.splitlines() if l.strip())
    assert got == n, (got, n)
    return n / dt


def main():
    d = tempfile.mkdtemp()
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    url = "redis://127.0.0.1:%d" % port
    workers = []
    try:
        serve = [SDRT, "serve"]
        submit = [SDRT, "submit", "--redis", url, "--pool", "bench"]
        workers.append(subprocess.Popen([SDRT, "worker", "--redis", url, "--pool", "bench"], stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        m, p99 = round_trips(serve)
        print("round trip host.health, stdio serve:        median %.3f ms, p99 %.3f ms" % (m, p99))
        m, p99 = round_trips(submit, tag='s')
        print("round trip host.health, pool (1 worker):    median %.3f ms, p99 %.3f ms" % (m, p99))
        print("throughput %d x host.health, stdio serve:     %.0f requests/s" % (N, throughput(serve, N, 'a')))
        print("throughput %d x host.health, pool 1 worker:   %.0f requests/s" % (N, throughput(submit, N, 'b')))
        for _ in range(2):
            workers.append(subprocess.Popen([SDRT, "worker", "--redis", url, "--pool", "bench"],
                                            stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        print("throughput %d x host.health, pool 3 workers:  %.0f requests/s" % (N, throughput(submit, N, 'c')))
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
            w.wait()
        redis.terminate()
        redis.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

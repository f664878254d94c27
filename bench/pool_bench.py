#!/usr/bin/env python3
"""bench/pool_bench.py - the pool's overhead against stdio (docs/PERFORMANCE.md).

usage: bench/pool_bench.py SDRT [N] [tls]
Starts its own redis-server on a loopback port. Measures, for host.health:
  - round trip, one request at a time (median, p99), `sdrt serve` vs
    `sdrt submit` -> Redis -> 1 `sdrt worker`;
  - requests/s with N requests written at once: serve, and the pool with
    1 and 3 workers.
With `tls`: the pool over redis:// against rediss:// (one Redis serving
both ports, a throwaway CA from the openssl command), 1 worker each,
alternated twice: round trip and requests/s."""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

SDRT = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
TLS = len(sys.argv) > 3 and sys.argv[3] == "tls"


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


def tls_compare():
    d = tempfile.mkdtemp()
    def ossl(*a):
        subprocess.run(["openssl"] + list(a), cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
         "-subj", "/CN=bench ca")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "s.key", "-out", "s.csr", "-subj", "/CN=bench")
    ossl("x509", "-req", "-in", "s.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "s.crt",
         "-days", "1", "-extfile", "san.ext")
    port, tport = free_port(), free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--tls-port", str(tport), "--bind", "127.0.0.1",
                              "--dir", d, "--save", "", "--appendonly", "no", "--tls-cert-file",
                              os.path.join(d, "s.crt"), "--tls-key-file", os.path.join(d, "s.key"),
                              "--tls-ca-cert-file", os.path.join(d, "ca.crt"), "--tls-auth-clients", "no"],
                             stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    env = dict(os.environ, SDRT_REDIS_CA=os.path.join(d, "ca.crt"))
    urls = {"plain": "redis://127.0.0.1:%d" % port, "tls": "rediss://127.0.0.1:%d" % tport}
    workers = []
    try:
        for name, url in urls.items():
            workers.append(subprocess.Popen([SDRT, "worker", "--redis", url, "--pool", name], env=env,
                                            stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        for rnd in range(2):
            for name, url in urls.items():
                submit = [SDRT, "submit", "--redis", url, "--pool", name]
                old = os.environ.copy()
                os.environ.update(env)
                try:
                    m, p99 = round_trips(submit, tag="%s%d-" % (name, rnd))
                    tp = throughput(submit, N, "t%s%d-" % (name, rnd))
                finally:
                    os.environ.clear()
                    os.environ.update(old)
                print("run %d %-5s: round trip median %.3f ms, p99 %.3f ms; %d pipelined: %.0f requests/s"
                      % (rnd + 1, name, m, p99, N, tp), flush=True)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
            w.wait()
        redis.terminate()
        redis.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    if TLS:
        return tls_compare()
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

#!/usr/bin/env python3
"""tests/pool/test_pool.py - `sdrt worker` / `sdrt submit` / `sdrt pool status`
against a real Redis (docs/scale-out.md). Each scenario starts its own
redis-server on a free loopback port in a temporary folder and stops it.
Exits 77 (skipped) when redis-server or redis-cli is not installed.

usage: test_pool.py SDRT PLUGIN_DIR [scenario...]
  SDRT        the sdrt executable
  PLUGIN_DIR  the test plugins folder (echo/ and crashy/ inside)
Environment: SDRT_REFERENCE (the tiny reference models) and SDRT_BUILD_DIR
(lib/sdrt/plugins inside: the real plugins) for the `inference` scenario.
"""
import json, os, random, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time

SDRT, PLUGINS = sys.argv[1], sys.argv[2]
ONLY = sys.argv[3:]
FAILS = []
WORKERS = []  # stopped when their scenario ends, failed or not


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Redis:
    def __init__(self, aof=False, conf="", extra=(), cli_auth=()):
        self.conf = conf
        self.cli_auth = list(cli_auth)
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="sdrt-pool-")
        self.port = free_port()
        self.aof = aof
        self.proc = None
        self.start()

    def start(self):
        args = ["redis-server"]
        if self.conf:  # ACL lines need a config file
            path = os.path.join(self.dir, "redis.conf")
            with open(path, "w") as f:
                f.write(self.conf)
            args.append(path)
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log")]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        self.proc = subprocess.Popen(args + self.extra)
        for _ in range(200):
            if self.cli("PING").strip() in ("PONG", "NOAUTH Authentication required.") or "NOAUTH" in self.cli("PING"):
                return
            time.sleep(0.02)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)  # a clean shutdown: the AOF is complete
            self.proc.wait(timeout=10)
            self.proc = None

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), "--no-auth-warning"] + self.cli_auth + list(args),
                           capture_output=True, text=True)
        return r.stdout

    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def close(self):
        for w in WORKERS:
            w.stop()
        WORKERS.clear()
        self.stop()
        if os.environ.get("SDRT_POOL_KEEP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def plugin_args(*names):
    a = []
    for n in names:
        a += ["--plugin-path", os.path.join(PLUGINS, n)]
    return a


class Worker:
    def __init__(self, redis, name, pool, extra=(), plugins=("echo",), env=None, url=None):
        self.log = open(os.path.join(redis.dir, "worker-%s.log" % name), "w")
        self.proc = subprocess.Popen([SDRT, "worker", "--redis", url or redis.url(), "--pool", pool, "--consumer", name,
                                      "--heartbeat", "0.2", "--set", "log_level=\"info\""] + list(extra) +
                                     plugin_args(*plugins), stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env)
        self.name = name
        WORKERS.append(self)

    def stop(self, sig=signal.SIGTERM):
        if self.log.closed:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Client:
    """One `sdrt submit`; lines written with send(), output collected."""

    def __init__(self, redis, pool, env=None, url=None, extra=()):
        self.proc = subprocess.Popen([SDRT, "submit", "--redis", url or redis.url(), "--pool", pool] + list(extra),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.lines = []
        self.times = {}
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            o = json.loads(line)
            self.lines.append(o)
            if o.get("type") != "event":
                self.times[o.get("request_id")] = time.monotonic()

    def send(self, obj):
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout=30):
        self.proc.stdin.close()
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "timeout"
        self.t.join(timeout=5)
        return rc

    def finals(self):
        f = {}
        for o in self.lines:
            if o.get("type") != "event":
                f.setdefault(o.get("request_id"), []).append(o)
        return f


def wait_for(cond, timeout, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return False


def pending(redis, pool):
    out = redis.cli("XPENDING", "sdrt:{%s}:requests" % pool, "workers").split("\n")
    return int(out[0]) if out and out[0].strip().lstrip("-").isdigit() else -1


def consumer_of(redis, pool, rid):
    """The consumer holding the pending entry whose line names rid."""
    raw = subprocess.run(["redis-cli", "-p", str(redis.port), "--json", "XPENDING", "sdrt:{%s}:requests" % pool,
                          "workers", "-", "+", "100"], capture_output=True, text=True).stdout
    try:
        entries = json.loads(raw)
    except ValueError:
        return None, None
    for e in entries:
        rng = subprocess.run(["redis-cli", "-p", str(redis.port), "--json", "XRANGE", "sdrt:{%s}:requests" % pool,
                              e[0], e[0]], capture_output=True, text=True).stdout
        if rid in rng:
            return e[1], e[0]
    return None, None


def scenario_load():
    """3 workers, 300 requests from 2 clients: one final each, none pending."""
    r = Redis()
    try:
        ws = [Worker(r, "w%d" % i, "load") for i in range(3)]
        clients = [Client(r, "load"), Client(r, "load")]
        expect = [{}, {}]
        rnd = random.Random()
        t0 = time.monotonic()
        for i in range(150):
            for c in range(2):
                rid = "c%d-%d" % (c, i)
                kind = rnd.choice(["health", "echo", "echo", "progress"])
                if kind == "health":
                    req = {"type": "host.health", "request_id": rid}
                    expect[c][rid] = ("health", None)
                elif kind == "echo":
                    data = {"v": rnd.randint(-10**9, 10**9), "s": "%x" % rnd.getrandbits(64)}
                    req = {"type": "echo.run", "request_id": rid, "data": data}
                    expect[c][rid] = ("echo", data)
                else:
                    n = rnd.randint(1, 4)
                    req = {"type": "echo.progress", "request_id": rid, "data": {"n": n}}
                    expect[c][rid] = ("progress", n)
                clients[c].send(req)
        rcs = [c.finish() for c in clients]
        dt = time.monotonic() - t0
        print("load: 300 requests through 3 workers in %.2f s (%.0f requests/s)" % (dt, 300 / dt), flush=True)
        check(rcs == [0, 0], "load: submit exit status %s" % rcs)
        for c in range(2):
            finals = clients[c].finals()
            check(set(finals) == set(expect[c]), "load: client %d got finals for %d of %d requests" %
                  (c, len(set(finals) & set(expect[c])), len(expect[c])))
            for rid, (kind, want) in expect[c].items():
                got = finals.get(rid, [])
                if not check(len(got) == 1, "load: %s got %d finals" % (rid, len(got))):
                    continue
                o = got[0]
                check(o.get("success") is True, "load: %s failed: %s" % (rid, o))
                if kind == "echo":
                    check(o.get("data") == want, "load: %s echoed %s, sent %s" % (rid, o.get("data"), want))
                elif kind == "health":
                    check(o["data"].get("status") == "ok", "load: %s health %s" % (rid, o["data"]))
                else:
                    ev = [e for e in clients[c].lines if e.get("type") == "event" and e.get("event_name") == "progress"
                          and e.get("request_id") == rid and e.get("data", {}).get("stage") != "initialization"]
                    check(len(ev) == want, "load: %s got %d progress events, asked %d" % (rid, len(ev), want))
        check(pending(r, "load") == 0, "load: %d entries left pending" % pending(r, "load"))
        # A request_id answered already: the stored answer, not a second run.
        again = Client(r, "load")
        rid = next(k for k, v in expect[0].items() if v[0] == "echo")
        again.send({"type": "echo.run", "request_id": rid, "data": {"different": True}})
        check(again.finish() == 0, "load: repeat client exit")
        rep = again.finals().get(rid, [])
        check(len(rep) == 1 and rep[0] == clients[0].finals()[rid][0],
              "load: repeated %s got %s, first answer %s" % (rid, rep, clients[0].finals()[rid]))
        st = subprocess.run([SDRT, "pool", "status", "--redis", r.url(), "--pool", "load"], capture_output=True,
                            text=True).stdout
        check("3 live worker(s)" in st and all("worker w%d:" % i in st for i in range(3)),
              "pool status lists the 3 workers:\n" + st)
        for w in ws:
            w.stop()
    finally:
        r.close()


def scenario_kill():
    """A worker SIGKILLed mid-job: another worker finishes the job."""
    r = Redis()
    try:
        opts = ["--visibility-timeout", "0.5"]
        ws = {n: Worker(r, n, "kill", opts) for n in ("k1", "k2")}
        time.sleep(0.3)
        c = Client(r, "kill")
        c.send({"type": "echo.slow", "request_id": "slow1", "data": {"seconds": 1.0}})
        for i in range(20):
            c.send({"type": "echo.run", "request_id": "e%d" % i, "data": {"i": i}})
        holder = [None, None]

        def running():
            holder[0], holder[1] = consumer_of(r, "kill", "slow1")
            return holder[0] is not None
        check(wait_for(running, 5), "kill: slow1 never ran")
        time.sleep(0.3)
        killed = holder[0]
        t_kill = time.time()
        ws[killed].proc.send_signal(signal.SIGKILL)
        ws[killed].proc.wait()
        rc = c.finish(timeout=30)
        check(rc == 0, "kill: submit exit %s" % rc)
        finals = c.finals()
        check(len(finals.get("slow1", [])) == 1 and finals["slow1"][0].get("success") is True,
              "kill: slow1 finals %s" % finals.get("slow1"))
        check(all(len(finals.get("e%d" % i, [])) == 1 for i in range(20)), "kill: an echo.run lacks its one final")
        att = r.cli("LRANGE", "sdrt:{kill}:attempts:%s" % holder[1], "0", "-1").strip().split("\n")
        check(len(att) == 2 and att[0].startswith(killed) and not att[1].startswith(killed),
              "kill: attempts %s (killed %s)" % (att, killed))
        if len(att) == 2:
            t_restart = float(att[1].split(" took it at ")[1].split(" ms")[0]) / 1e3
            print("kill: job restarted on another worker %.2f s after SIGKILL (visibility timeout 0.5 s, "
                  "heartbeat 0.2 s, expiry 1 s)" % (t_restart - t_kill), flush=True)
        check(pending(r, "kill") == 0, "kill: entries left pending")
        for w in ws.values():
            w.stop()
    finally:
        r.close()


def scenario_crash():
    """A request that crashes its worker every time is dead-lettered."""
    r = Redis()
    try:
        opts = ["--max-deliveries", "2", "--visibility-timeout", "0.5"]
        ws = [Worker(r, n, "crash", opts, plugins=("echo", "crashy")) for n in ("x1", "x2")]
        time.sleep(0.3)
        c = Client(r, "crash")
        c.send({"type": "crashy.segv", "request_id": "boom", "data": {}})
        for i in range(30):
            c.send({"type": "echo.run", "request_id": "ok%d" % i, "data": {"i": i}})
        rc = c.finish(timeout=40)
        check(rc == 0, "crash: submit exit %s" % rc)
        finals = c.finals()
        b = finals.get("boom", [])
        check(len(b) == 1 and b[0].get("success") is False and b[0].get("error_code") == "INTERNAL" and
              b[0]["error"].startswith("dead-lettered") and b[0]["error_data"]["dead_letter"]["deliveries"] == 3,
              "crash: boom finals %s" % b)
        if b:
            print("crash: boom answered:", json.dumps(b[0].get("error"))[:300], flush=True)
        check(all(len(finals.get("ok%d" % i, [])) == 1 and finals["ok%d" % i][0].get("data") == {"i": i}
                  for i in range(30)), "crash: the other requests were not all answered once")
        dead = r.cli("XRANGE", "sdrt:{crash}:dead", "-", "+")
        check(dead.count("crashy.segv") == 1 and "max_deliveries 2" in dead, "crash: dead stream:\n" + dead)
        check(pending(r, "crash") == 0, "crash: entries left pending")
        for w in ws:
            w.stop()
    finally:
        r.close()


def scenario_restart():
    """Redis stopped and restarted (AOF on) mid-run: nothing lost."""
    r = Redis(aof=True)
    try:
        ws = [Worker(r, n, "rs", ["--visibility-timeout", "1", "--set", "shutdown_grace_s=1",
                          "--set", "cancel_grace_s=0.5"])
              for n in ("r1", "r2", "r3")]
        time.sleep(0.3)
        c = Client(r, "rs")
        for i in range(60):
            c.send({"type": "echo.slow", "request_id": "a%d" % i, "data": {"seconds": 0.05}})
        time.sleep(0.2)
        r.stop()
        # requests written while Redis is down wait in submit and go out on reconnect
        for i in range(60):
            c.send({"type": "echo.run", "request_id": "b%d" % i, "data": {"i": i}})
        # a worker stopped while Redis is down still stops (its entries go to the others)
        t = time.monotonic()
        ws[2].stop()
        check(time.monotonic() - t < 3 and ws[2].proc.returncode == 0,
              "restart: SIGTERM with Redis down took %.1f s, exit %s" % (time.monotonic() - t, ws[2].proc.returncode))
        time.sleep(0.3)
        r.start()
        for i in range(60):
            c.send({"type": "echo.run", "request_id": "c%d" % i, "data": {"i": i}})
        rc = c.finish(timeout=40)
        check(rc == 0, "restart: submit exit %s" % rc)
        finals = c.finals()
        want = ["a%d" % i for i in range(60)] + ["b%d" % i for i in range(60)] + ["c%d" % i for i in range(60)]
        bad = [k for k in want if len(finals.get(k, [])) != 1 or finals[k][0].get("success") is not True]
        check(not bad, "restart: %d requests without exactly one successful final: %s" % (len(bad), bad[:10]))
        check(pending(r, "rs") == 0, "restart: entries left pending")
        for w in ws:
            w.stop()
    finally:
        r.close()


def scenario_cancel():
    """host.cancel from another client reaches the worker running the job."""
    r = Redis()
    try:
        ws = [Worker(r, n, "cx") for n in ("q1", "q2")]
        time.sleep(0.3)
        a = Client(r, "cx")
        a.send({"type": "echo.slow", "request_id": "long1", "data": {"seconds": 20}})
        check(wait_for(lambda: consumer_of(r, "cx", "long1")[0] is not None, 5), "cancel: long1 never ran")
        time.sleep(0.2)
        b = Client(r, "cx")
        t0 = time.monotonic()
        b.send({"type": "host.cancel", "request_id": "k1", "data": {"request_id": "long1"}})
        check(b.finish() == 0, "cancel: canceller exit")
        check(a.finish(timeout=10) == 0, "cancel: submit exit")
        f = a.finals().get("long1", [])
        check(len(f) == 1 and f[0].get("success") is False and f[0].get("error_code") == "CANCELLED",
              "cancel: long1 finals %s" % f)
        if "long1" in a.times:
            dt = a.times["long1"] - t0
            check(dt < 3, "cancel: took %.2f s" % dt)
            print("cancel: long1 answered CANCELLED %.3f s after host.cancel" % dt, flush=True)
        kb = b.finals().get("k1", [])
        check(len(kb) == 1 and kb[0].get("success") is True, "cancel: host.cancel answer %s" % kb)
        for w in ws:
            w.stop()
    finally:
        r.close()


def scenario_stopdown():
    """SIGTERM while Redis is down, with jobs running and the default graces
    (shutdown_grace_s 30, cancel_grace_s 5): the worker exits within 2 s,
    and its jobs run elsewhere once Redis is back (one at a time: a
    redelivered entry runs alone)."""
    r = Redis(aof=True)
    try:
        ws = [Worker(r, n, "sd", ["--visibility-timeout", "1"]) for n in ("s1", "s2")]
        time.sleep(0.3)
        c = Client(r, "sd")
        for i in range(3):
            c.send({"type": "echo.slow", "request_id": "s%d" % i, "data": {"seconds": 1.0}})
        check(wait_for(lambda: consumer_of(r, "sd", "s0")[0] is not None, 5), "stopdown: s0 never ran")
        time.sleep(0.3)
        r.stop()
        time.sleep(0.3)  # the workers are in their reconnect loops now
        times = []
        for w in ws:
            t = time.monotonic()
            w.proc.send_signal(signal.SIGTERM)
            try:
                w.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            times.append(time.monotonic() - t)
        print("stopdown: SIGTERM to exit with Redis down: %s s" % ", ".join("%.2f" % x for x in times), flush=True)
        check(all(x < 2.0 for x in times) and all(w.proc.returncode == 0 for w in ws),
              "stopdown: exits took %s s, statuses %s" % (times, [w.proc.returncode for w in ws]))
        for w in ws:
            w.stop()
        logs = "".join(open(os.path.join(r.dir, "worker-%s.log" % n)).read() for n in ("s1", "s2"))
        inflight = [int(x) for x in re.findall(r"unreachable: the (\d+) request\(s\) in flight are cancelled", logs)]
        check(len(inflight) == 2 and sum(inflight) >= 1,
              "stopdown: the workers did not stop with jobs in flight and Redis unreachable: %s" % inflight)
        r.start()
        w3 = Worker(r, "s3", "sd", ["--visibility-timeout", "1"])
        rc = c.finish(timeout=60)
        check(rc == 0, "stopdown: submit exit %s" % rc)
        finals = c.finals()
        bad = [k for k in ("s%d" % i for i in range(3)) if len(finals.get(k, [])) != 1
               or finals[k][0].get("success") is not True]
        check(not bad, "stopdown: requests without one successful final: %s" % bad)
        w3.stop()
    finally:
        r.close()


def make_pki(d):
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a
    client certificate signed by it, and a second CA that signed nothing
    the server uses, with the openssl command line."""
    def run(*a):
        subprocess.run(["openssl"] + list(a), cwd=d, check=True, capture_output=True)
    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca + ".key", "-out", ca + ".crt",
            "-days", "2", "-subj", "/CN=sdrt test %s" % ca)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", who + ".key", "-out", who + ".csr",
            "-subj", "/CN=sdrt test %s" % who)
        run("x509", "-req", "-in", who + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", who + ".crt", "-days", "2", "-extfile", "san.ext")
    return {k: os.path.join(d, k) for k in ("ca.crt", "other-ca.crt", "server.crt", "server.key", "client.crt",
                                            "client.key")}


def scenario_tls():
    """rediss:// through Debian's redis-server with --tls-port (client
    certificates required): requests through `sdrt worker` + `sdrt submit`,
    a Redis restart through TLS, a wrong CA and a wrong server name refused
    with a clear error."""
    d = tempfile.mkdtemp(prefix="sdrt-pool-pki-")
    try:
        pki = make_pki(d)
    except (OSError, subprocess.CalledProcessError) as e:
        check(False, "tls: cannot make certificates with the openssl command: %s" % e)
        return
    tls_port = free_port()
    try:
        r = Redis(aof=True, extra=["--tls-port", str(tls_port), "--tls-cert-file", pki["server.crt"],
                                   "--tls-key-file", pki["server.key"], "--tls-ca-cert-file", pki["ca.crt"],
                                   "--tls-auth-clients", "yes"])
    except RuntimeError:
        # Debian's redis-server is built with TLS; one built without it
        # refuses the directive ("Bad directive"): said and skipped, since
        # sdrt's side is not at fault. Anything else is a failure.
        probe = subprocess.run(["redis-server", "--port", "0", "--save", "", "--tls-port", str(free_port())],
                               capture_output=True, text=True, timeout=10)
        text = probe.stdout + probe.stderr
        shutil.rmtree(d, ignore_errors=True)
        if "Bad directive" in text or "not supported" in text:
            print("tls: SKIPPED: this redis-server was built without TLS: %s" % text.strip()[-300:], flush=True)
            return
        raise
    url = "rediss://127.0.0.1:%d" % tls_port
    try:
        # The worker takes its TLS files from the config's pool section
        # (--set), the client from the environment.
        wopts = ["--set", 'pool.tls_ca_file="%s"' % pki["ca.crt"], "--set", 'pool.tls_cert_file="%s"' % pki["client.crt"],
                 "--set", 'pool.tls_key_file="%s"' % pki["client.key"]]
        ws = [Worker(r, n, "tls", wopts, url=url) for n in ("t1", "t2")]
        env = dict(os.environ, SDRT_REDIS_CA=pki["ca.crt"], SDRT_REDIS_CERT=pki["client.crt"],
                   SDRT_REDIS_KEY=pki["client.key"])
        c = Client(r, "tls", env=env, url=url)
        rnd = random.Random()
        sent = {}
        for i in range(20):
            data = {"v": rnd.randint(0, 10**9)}
            sent["a%d" % i] = data
            c.send({"type": "echo.run", "request_id": "a%d" % i, "data": data})
        c.send({"type": "echo.progress", "request_id": "p1", "data": {"n": 3}})
        # ~3 MB each way: many TLS records, partial writes on both sides of the pump.
        big = {"blob": "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3 * 1024 * 1024))}
        sent["big"] = big
        c.send({"type": "echo.run", "request_id": "big", "data": big})
        check(wait_for(lambda: len(c.finals()) >= 22, 30), "tls: the first 22 requests were not all answered")
        r.stop()  # through TLS too: reconnect with backoff, nothing lost
        for i in range(20):
            data = {"v": rnd.randint(0, 10**9)}
            sent["b%d" % i] = data
            c.send({"type": "echo.run", "request_id": "b%d" % i, "data": data})
        time.sleep(0.5)
        r.start()
        rc = c.finish(timeout=40)
        check(rc == 0, "tls: submit exit %s" % rc)
        finals = c.finals()
        bad = [k for k, v in sent.items() if len(finals.get(k, [])) != 1 or finals[k][0].get("data") != v]
        check(not bad, "tls: %d echo requests without their one right final: %s" % (len(bad), bad[:5]))
        ev = [e for e in c.lines if e.get("type") == "event" and e.get("request_id") == "p1"
              and e.get("event_name") == "progress" and e.get("data", {}).get("stage") != "initialization"]
        check(len(ev) == 3 and len(finals.get("p1", [])) == 1, "tls: p1 got %d progress events" % len(ev))
        check(pending(r, "tls") == 0, "tls: entries left pending")
        logs = "".join(open(os.path.join(r.dir, "worker-%s.log" % n)).read() for n in ("t1", "t2"))
        check("reconnected" in logs, "tls: the workers did not log a reconnect after the Redis restart")
        # A CA that did not sign the server's certificate: refused, said clearly.
        bad_env = dict(env, SDRT_REDIS_CA=pki["other-ca.crt"])
        st = subprocess.run([SDRT, "submit", "--redis", url, "--pool", "tls"], input="", capture_output=True,
                            text=True, env=bad_env, timeout=20)
        check(st.returncode == 1 and "certificate verify failed" in st.stderr,
              "tls: a wrong CA: exit %s, stderr %s" % (st.returncode, st.stderr))
        print("tls: wrong CA ->", st.stderr.strip()[:200], flush=True)
        wlog = os.path.join(r.dir, "worker-bad.log")
        with open(wlog, "w") as f:
            wp = subprocess.run([SDRT, "worker", "--redis", url, "--pool", "tls", "--consumer", "bad"],
                                stdout=f, stderr=subprocess.STDOUT, env=bad_env, timeout=20)
        wtext = open(wlog).read()
        check(wp.returncode == 1 and "certificate verify failed" in wtext,
              "tls: a worker with a wrong CA: exit %s, log %s" % (wp.returncode, wtext[-400:]))
        # The right CA, but the certificate does not name the server asked for.
        st = subprocess.run([SDRT, "pool", "status", "--redis", url, "--pool", "tls", "--set",
                             'pool.tls_server_name="redis.example"'], capture_output=True, text=True, env=env,
                            timeout=20)
        check(st.returncode == 1 and "mismatch" in st.stderr, "tls: a wrong server name: %s" % st.stderr)
        # Name checking off: the chain alone is checked (and the URL from
        # the config's pool.redis).
        st = subprocess.run([SDRT, "pool", "status", "--set", 'pool.redis="%s"' % url, "--pool", "tls", "--set",
                             'pool.tls_server_name="redis.example"', "--set", "pool.tls_verify_server_name=false"],
                            capture_output=True, text=True, env=env, timeout=20)
        check(st.returncode == 0 and "2 live worker(s)" in st.stdout, "tls: pool status: %s %s" % (st.stdout, st.stderr))
        for w in ws:
            w.stop()
    finally:
        r.close()
        shutil.rmtree(d, ignore_errors=True)


def scenario_auth():
    """AUTH on every (re)connect, credentials from the environment, the
    config or the URL, never in a log or an answer; a wrong password is
    refused with a clear error naming no secret."""
    pw = "pw-%x" % random.getrandbits(64)
    r = Redis(aof=True, conf="user default off\nuser sdrtpool on >%s ~* &* +@all\n" % pw,
              cli_auth=["--user", "sdrtpool", "--pass", pw])
    try:
        env = dict(os.environ, SDRT_REDIS_USER="sdrtpool", SDRT_REDIS_PASSWORD=pw)
        w = Worker(r, "a1", "auth", env=env)
        # The second worker: user and password from the config's pool section.
        w2 = Worker(r, "a2", "auth", ["--set", 'pool.user="sdrtpool"', "--set", 'pool.password="%s"' % pw])
        # The client: both in the URL (blanked in its visible command line).
        curl = "redis://sdrtpool:%s@127.0.0.1:%d" % (pw, r.port)
        c = Client(r, "auth", url=curl)
        for i in range(10):
            c.send({"type": "echo.run", "request_id": "h%d" % i, "data": {"i": i}})
        check(wait_for(lambda: len(c.finals()) >= 10, 20), "auth: the first requests were not answered")
        cmdline = open("/proc/%d/cmdline" % c.proc.pid, "rb").read().decode(errors="replace")
        check(pw not in cmdline, "auth: the password is visible in the client's command line")
        # AUTH again after a Redis restart.
        r.stop()
        for i in range(10, 20):
            c.send({"type": "echo.run", "request_id": "h%d" % i, "data": {"i": i}})
        time.sleep(0.3)
        r.start()
        check(c.finish(timeout=30) == 0, "auth: submit exit")
        f = c.finals()
        bad = [i for i in range(20) if len(f.get("h%d" % i, [])) != 1 or f["h%d" % i][0].get("data") != {"i": i}]
        check(not bad, "auth: requests without their one final: %s" % bad)
        check(pending(r, "auth") == 0, "auth: entries left pending")
        wrong = pw + "x"
        bad_env = dict(os.environ, SDRT_REDIS_USER="sdrtpool", SDRT_REDIS_PASSWORD=wrong)
        outs = []
        st = subprocess.run([SDRT, "pool", "status", "--redis", r.url(), "--pool", "auth"], capture_output=True,
                            text=True, env=bad_env, timeout=20)
        check(st.returncode == 1 and "authentication refused" in st.stderr, "auth: a wrong password: %s" % st.stderr)
        outs.append(st.stdout + st.stderr)
        st = subprocess.run([SDRT, "submit", "--redis", r.url(), "--pool", "auth"], input='{"type":"host.health","request_id":"x"}\n',
                            capture_output=True, text=True, env=bad_env, timeout=20)
        check(st.returncode == 1 and "authentication refused" in st.stderr, "auth: submit with a wrong password: %s"
              % st.stderr)
        print("auth: wrong password ->", st.stderr.strip()[:200], flush=True)
        outs.append(st.stdout + st.stderr)
        st = subprocess.run([SDRT, "worker", "--redis", r.url(), "--pool", "auth", "--consumer", "bad"],
                            capture_output=True, text=True, env=bad_env, timeout=20)
        check(st.returncode == 1 and "authentication refused" in st.stderr, "auth: worker with a wrong password: %s"
              % st.stderr[-400:])
        outs.append(st.stdout + st.stderr)
        # No password at all where one is needed.
        st = subprocess.run([SDRT, "pool", "status", "--redis", r.url(), "--pool", "auth"], capture_output=True,
                            text=True, timeout=20, env={k: v for k, v in os.environ.items()
                                                        if not k.startswith("SDRT_REDIS_")})
        check(st.returncode == 1 and "authentication required" in st.stderr, "auth: no password: %s" % st.stderr)
        w.stop()
        w2.stop()
        log = "".join(open(os.path.join(r.dir, "worker-%s.log" % n)).read() for n in ("a1", "a2"))
        log += "".join(outs) + "".join(json.dumps(o) for o in c.lines)
        check(pw not in log and wrong not in log, "auth: the password appears in a log or an answer")
        check("reconnected" in log, "auth: no reconnect logged after the Redis restart")
    finally:
        r.close()
    # requirepass (the default user, a password only): from the URL for the
    # worker, from the environment for the client.
    pw2 = "rp-%x" % random.getrandbits(64)
    r = Redis(extra=["--requirepass", pw2], cli_auth=["-a", pw2])
    try:
        w = Worker(r, "rp", "rp", url="redis://:%s@127.0.0.1:%d" % (pw2, r.port))
        c = Client(r, "rp", env=dict(os.environ, SDRT_REDIS_PASSWORD=pw2))
        for i in range(3):
            c.send({"type": "echo.run", "request_id": "q%d" % i, "data": {"i": i}})
        check(c.finish(timeout=20) == 0, "auth: requirepass submit exit")
        f = c.finals()
        check(all(len(f.get("q%d" % i, [])) == 1 and f["q%d" % i][0].get("data") == {"i": i} for i in range(3)),
              "auth: requirepass finals %s" % f)
        w.stop()
        log = open(os.path.join(r.dir, "worker-rp.log")).read() + "".join(json.dumps(o) for o in c.lines)
        check(pw2 not in log, "auth: the requirepass password appears in a log or an answer")
    finally:
        r.close()


def scenario_inference():
    """inference.run on the tiny SD1.5 reference model through 2 workers:
    each image is the one `sdrt serve` makes for the same request (the pool
    changes where a request runs, never what it computes)."""
    ref = os.environ.get("SDRT_REFERENCE", "")
    if not os.path.isdir(os.path.join(ref, "tiny-sd15", "diffusers")):
        print("inference: skipped (no tiny-sd15 under SDRT_REFERENCE=%r)" % ref, flush=True)
        return
    r = Redis()
    out_pool = tempfile.mkdtemp(prefix="sdrt-pool-out-")
    out_serve = tempfile.mkdtemp(prefix="sdrt-serve-out-")
    try:
        roots = ["--model-root", ref]
        ws = [Worker(r, n, "inf", roots + ["--output-root", out_pool], plugins=()) for n in ("i1", "i2")]
        rnd = random.Random()
        reqs = []
        for i in range(4):
            reqs.append({"type": "inference.run", "request_id": "img%d" % i,
                         "data": {"model_id": "tiny-sd15/diffusers", "prompt": "a red fox in the snow %d" % i,
                                  "width": 64, "height": 64, "num_inference_steps": 4,
                                  "seed": rnd.randint(0, 2**31 - 1)}})
        c = Client(r, "inf")
        for q in reqs:
            c.send(q)
        rc = c.finish(timeout=120)
        check(rc == 0, "inference: submit exit %s" % rc)
        pool_f = c.finals()
        serve = subprocess.run([SDRT, "serve"] + roots + ["--output-root", out_serve],
                               input="".join(json.dumps(q) + "\n" for q in reqs), capture_output=True, text=True,
                               timeout=120)
        serve_f = {}
        for line in serve.stdout.splitlines():
            o = json.loads(line)
            if o.get("type") == "response":
                serve_f[o.get("request_id")] = o
        ran_on = set()
        for q in reqs:
            rid = q["request_id"]
            got = pool_f.get(rid, [])
            if not check(len(got) == 1 and got[0].get("success") is True, "inference: %s finals %s" % (rid, got)):
                continue
            s = serve_f.get(rid)
            if not check(s and s.get("success") is True, "inference: serve answered %s with %s" % (rid, s)):
                continue
            a, b = got[0]["data"]["images"][0], s["data"]["images"][0]
            check(png_pixels(a) == png_pixels(b), "inference: %s: the pool's image %s differs from serve's %s"
                  % (rid, a, b))
            check(got[0]["data"].get("seed") == q["data"]["seed"], "inference: %s seed %s" % (rid, got[0]["data"].get("seed")))
        check(pending(r, "inf") == 0, "inference: entries left pending")
        for w in ws:
            w.stop()
        print("inference: %d inference.run through the pool, images equal to serve's" % len(reqs), flush=True)
    finally:
        r.close()
        shutil.rmtree(out_pool, ignore_errors=True)
        shutil.rmtree(out_serve, ignore_errors=True)


def png_pixels(path):
    """The decompressed image data of a PNG (its text chunks, which name the
    request, left out)."""
    import zlib
    with open(path, "rb") as f:
        b = f.read()
    i, idat = 8, b""
    while i + 12 <= len(b):
        n = int.from_bytes(b[i:i + 4], "big")
        if b[i + 4:i + 8] == b"IDAT":
            idat += b[i + 8:i + 8 + n]
        i += 12 + n
    return zlib.decompress(idat)


def main():
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        print("SKIP: redis-server/redis-cli not installed (scripts/setup.sh installs redis-server)")
        return 77
    scenarios = [scenario_load, scenario_kill, scenario_crash, scenario_restart, scenario_stopdown, scenario_cancel,
                 scenario_auth, scenario_tls, scenario_inference]
    for s in scenarios:
        if ONLY and s.__name__.split("_", 1)[1] not in ONLY:
            continue
        t = time.monotonic()
        print("==", s.__name__, flush=True)
        s()
        print("== %s: %.1f s" % (s.__name__, time.monotonic() - t), flush=True)
    print("FAILED: %d check(s)" % len(FAILS) if FAILS else "all pool checks passed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

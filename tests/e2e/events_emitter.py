#!/usr/bin/env python3
"""events_emitter.py — send usage events to tallyd's HTTP door (POST /api/v1/events) as CloudEvents.

Standard library only (urllib.request, json): a small example emitter for any
machine with Python 3, and the load generator of tests/e2e/test_events_http.sh
and test_events_crash.sh.

Each event is a CloudEvent (specversion 1.0) whose subject is the namespace,
type the metric, and data {"value": V, "object": "obj-N"}; `--count` events
(or as many as `--duration` seconds allow) go out in requests of `--batch`
events (application/cloudevents-batch+json), over the namespaces of
`--namespaces`, each with a unique id (`--id-prefix` + number) from one
`--source`. The values are random (seeded by `--seed`): integers, and
with `--value-kinds` also numeric strings ("123") and floats that are exact in
binary (multiples of 0.25), so every total is exact.

Exactly-once from the emitter's side: tallyd answers 204 only once a request's
events are committed, and counts an event whose (source, id) it already holds
from this credential once. So an emitter resends a request until it gets a
2xx — after a timeout, a refused connection, a reset or a 503 — without fear
of counting twice. `--resend P` also resends a fraction P of the requests that
were already answered 2xx, and mixes a few already-sent events into later
requests, to show that nothing is counted twice.

At the end it prints, on stdout, the totals tallyd must report, one line per
namespace and metric (each distinct event id counted once):
    NS METRIC SUM COUNT
(SUM with two decimals when floats were sent), and a summary on stderr.
It exits 0 when every request was answered 2xx, 1 when a request was refused
(4xx: printed with tallyd's message), 2 on bad arguments, 3 when --deadline
passed before every request got a 2xx.

Example:
    TALLY_KEY=NAME:SECRET ./events_emitter.py --url http://127.0.0.1:7400 \\
        --namespaces shop,web --metric api_calls --count 1000 --batch 100
"""

import argparse
import http.client
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request

BATCH_TYPE = "application/cloudevents-batch+json"


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Send usage events to tallyd's POST /api/v1/events (CloudEvents).",
        epilog="The key (NAME:SECRET, an emitter credential from `tallyctl keygen`) comes from "
        "--key or the environment variable TALLY_KEY.",
    )
    p.add_argument("--url", required=True,
                   help="tallyd's HTTP base URL, e.g. http://127.0.0.1:7400 (/api/v1/events is added "
                   "unless the URL already ends with it)")
    p.add_argument("--key", default=None, help="emitter credential NAME:SECRET (default: $TALLY_KEY)")
    p.add_argument("--count", type=int, default=1000, help="distinct events to send (default 1000)")
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop starting new requests after this many seconds, even before --count "
                   "events (0: no limit; the default)")
    p.add_argument("--batch", type=int, default=100, help="events per request (default 100)")
    p.add_argument("--namespaces", default="default",
                   help="comma-separated namespaces (CloudEvent subject), chosen at random per event")
    p.add_argument("--metric", default="api_calls", help="metric label (CloudEvent type)")
    p.add_argument("--source", default="events-emitter", help="CloudEvent source")
    p.add_argument("--id-prefix", default=None,
                   help="prefix of the event ids (default: one made of the time and pid, so two "
                   "runs never share ids); the same prefix and seed resend the same events")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    p.add_argument("--min-value", type=int, default=1, help="smallest random value (default 1)")
    p.add_argument("--max-value", type=int, default=1000, help="largest random value (default 1000)")
    p.add_argument("--value-kinds", default="int",
                   help="comma-separated kinds of values to mix: int, str (a numeric string), "
                   "float (a multiple of 0.25) (default int)")
    p.add_argument("--objects", type=int, default=4,
                   help="distinct data.object labels (obj-0..obj-N-1); 0 sends no label (default 4)")
    p.add_argument("--resend", type=float, default=0.0,
                   help="fraction (0..1) of answered requests sent again whole, and of requests "
                   "that carry a few already-sent events (default 0)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for one answer (default 10)")
    p.add_argument("--deadline", type=float, default=300.0,
                   help="give up (exit 3) after this many seconds of retrying (default 300)")
    p.add_argument("--retry-pause", type=float, default=0.05,
                   help="seconds between attempts at a request that got no 2xx (default 0.05)")
    p.add_argument("--quiet", action="store_true", help="no summary on stderr")
    a = p.parse_args(argv)
    if a.key is None:
        a.key = os.environ.get("TALLY_KEY")
    if not a.key or ":" not in a.key:
        p.error("an emitter credential NAME:SECRET is needed: --key or TALLY_KEY")
    if a.count < 0 or a.batch < 1:
        p.error("--count must be >= 0 and --batch >= 1")
    if a.min_value > a.max_value:
        p.error("--min-value is above --max-value")
    a.kinds = [k for k in a.value_kinds.split(",") if k]
    if not a.kinds or any(k not in ("int", "str", "float") for k in a.kinds):
        p.error("--value-kinds takes int, str and float")
    a.ns_list = [n for n in a.namespaces.split(",") if n]
    if not a.ns_list:
        p.error("--namespaces is empty")
    if not 0.0 <= a.resend <= 1.0:
        p.error("--resend is a fraction between 0 and 1")
    if not a.url.rstrip("/").endswith("/api/v1/events"):
        a.url = a.url.rstrip("/") + "/api/v1/events"
    if a.id_prefix is None:
        a.id_prefix = "e%x-%d-" % (int(time.time() * 1000), os.getpid())
    return a


class Emitter:
    """Sends requests until they are answered 2xx and keeps the expected totals."""

    def __init__(self, a):
        self.a = a
        self.requests = 0   # HTTP requests made, retries included
        self.retries = 0    # attempts that got no 2xx and were repeated
        self.resent = 0     # requests sent again on purpose after a 2xx
        self.refused = 0    # attempts whose connection was refused (no server)
        self.interrupted = 0  # attempts cut off after connecting: reset, closed, timed out
        self.started = time.monotonic()

    def post(self, events):
        """POST one request until a 2xx; returns 0, or exits on a 4xx or the deadline."""
        body = json.dumps(events, separators=(",", ":")).encode()
        last = "no attempt"
        while True:
            if time.monotonic() - self.started > self.a.deadline:
                sys.stderr.write("events_emitter: deadline of %gs passed; last failure: %s\n"
                                 % (self.a.deadline, last))
                sys.exit(3)
            req = urllib.request.Request(self.a.url, data=body, method="POST", headers={
                "Content-Type": BATCH_TYPE,
                "Authorization": "Bearer " + self.a.key,
            })
            self.requests += 1
            try:
                with urllib.request.urlopen(req, timeout=self.a.timeout) as r:
                    r.read()
                    if 200 <= r.status < 300:
                        return 0
                    last = "status %d" % r.status
            except urllib.error.HTTPError as e:
                text = e.read().decode("utf-8", "replace")
                if 400 <= e.code < 500 and e.code not in (408, 429):
                    # refused: sending it again cannot help
                    sys.stderr.write("events_emitter: request refused with %d: %s\n" % (e.code, text))
                    sys.exit(1)
                last = "status %d: %s" % (e.code, text)
            except (OSError, http.client.HTTPException) as e:
                # refused connection, reset, timeout: the request may or may not
                # have been committed; resending it is safe (URLError is an OSError)
                last = "%s: %s" % (type(e).__name__, e)
                reason = e.reason if isinstance(e, urllib.error.URLError) else e
                if isinstance(reason, ConnectionRefusedError):
                    self.refused += 1
                else:
                    self.interrupted += 1
            self.retries += 1
            time.sleep(self.a.retry_pause)


def make_value(rng, a):
    kind = rng.choice(a.kinds)
    n = rng.randint(a.min_value, a.max_value)
    if kind == "int":
        return n, n, False
    if kind == "str":
        return str(n), n, False
    q = rng.randint(0, 3)  # n + q/4: exact in a double, so are the sums
    v = n + q / 4.0
    return v, v, True


def main(argv):
    a = parse_args(argv)
    rng = random.Random(a.seed if a.seed is not None else time.time_ns())
    em = Emitter(a)
    totals = {}    # ns -> [sum, count]
    sent = []      # every event sent once, for mixing into later requests
    any_float = False
    done = 0
    while done < a.count:
        if a.duration > 0 and time.monotonic() - em.started >= a.duration:
            break
        n = min(a.batch, a.count - done)
        events = []
        for i in range(done, done + n):
            ns = rng.choice(a.ns_list)
            v, num, is_float = make_value(rng, a)
            any_float = any_float or is_float
            data = {"value": v}
            if a.objects > 0:
                data["object"] = "obj-%d" % rng.randrange(a.objects)
            events.append({
                "specversion": "1.0",
                "id": "%s%d" % (a.id_prefix, i),
                "source": a.source,
                "type": a.metric,
                "subject": ns,
                "data": data,
            })
            t = totals.setdefault(ns, [0, 0])
            t[0] += num
            t[1] += 1
        done += n
        body = list(events)
        # a few events already sent (answered 2xx) ride along: not counted again
        if sent and a.resend > 0 and rng.random() < a.resend:
            body += rng.sample(sent, min(len(sent), max(1, n // 10)))
            rng.shuffle(body)
        em.post(body)
        if a.resend > 0 and rng.random() < a.resend:
            em.post(body)  # the whole request again, as after a lost answer
            em.resent += 1
        sent.extend(events)
        if len(sent) > 10000:
            del sent[:5000]
    for ns in sorted(totals):
        s, c = totals[ns]
        if any_float:
            print("%s %s %.2f %d" % (ns, a.metric, s, c))
        else:
            print("%s %s %d %d" % (ns, a.metric, s, c))
    sys.stdout.flush()
    if not a.quiet:
        el = time.monotonic() - em.started
        sys.stderr.write("events_emitter: %d events in %d requests (%d retried: %d refused, "
                         "%d interrupted, %d 5xx; %d resent on purpose) in %.2fs; all answered 2xx\n"
                         % (done, em.requests, em.retries, em.refused, em.interrupted,
                            em.retries - em.refused - em.interrupted, em.resent, el))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)

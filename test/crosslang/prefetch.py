#!/usr/bin/env python3
"""Channel-wide prefetch (basic.qos global_qos=True) through pika, as RabbitMQ 3.10 does it.

While the channel's limit is full, a no-ack consumer on the channel gets nothing either; an
ack releases it. Credit freed by acks is shared among the queues waiting on the limit, not
always taken by the queue whose message was acked.

Connects to AMQP_URL, prints one line per step, and exits 0 with "prefetch.py: PASS" when
the broker behaved as RabbitMQ does; on a mismatch it prints "FAIL: ..." and exits 1. The
run is bounded by SMOKE_TIMEOUT seconds (default 60).
"""

import os
import signal
import sys
import uuid

import pika
import pika.exceptions


class Mismatch(Exception):
    """The broker answered something RabbitMQ would not have."""


def check(cond, what):
    if not cond:
        raise Mismatch(what)


def step(msg):
    print(f"prefetch.py: ok: {msg}", flush=True)


def on_alarm(_signum, _frame):
    print("prefetch.py: FAIL: timed out (SMOKE_TIMEOUT)", file=sys.stderr, flush=True)
    os._exit(2)


def declare(ch, name, bodies):
    ch.queue_declare(name, auto_delete=True)
    for b in bodies:
        ch.basic_publish("", name, b)


def no_ack_held(conn, prefix):
    ch = conn.channel()
    acked, free = prefix + "acked", prefix + "noack"
    declare(ch, acked, [b"a"])
    declare(ch, free, [])
    ch.basic_qos(prefetch_count=1, global_qos=True)
    got = {"acked": [], "free": []}
    ch.basic_consume(acked, lambda c, m, p, b: got["acked"].append(m), auto_ack=False)
    conn.process_data_events(time_limit=0.3)
    check(len(got["acked"]) == 1, f"acked consumer got {len(got['acked'])} deliveries, want 1")
    ch.basic_consume(free, lambda c, m, p, b: got["free"].append(b), auto_ack=True)
    ch.basic_publish("", free, b"n")
    conn.process_data_events(time_limit=0.3)
    check(got["free"] == [], f"no-ack consumer got {got['free']} while the channel's limit was full")
    step("a full channel-wide limit holds the channel's no-ack consumer")
    ch.basic_ack(got["acked"][0].delivery_tag)
    conn.process_data_events(time_limit=0.3)
    check(got["free"] == [b"n"], f"no-ack consumer got {got['free']} after the ack, want [b'n']")
    step("the ack releases it")
    ch.close()


def shared_fairly(conn, prefix):
    ch = conn.channel()
    qa, qb = prefix + "qa", prefix + "qb"
    declare(ch, qa, [b"qa"] * 20)
    declare(ch, qb, [b"qb"] * 20)
    ch.basic_qos(prefetch_count=1, global_qos=True)
    counts = {b"qa": 0, b"qb": 0}

    def on_message(c, m, p, body):
        counts[body] += 1
        if counts[b"qa"] + counts[b"qb"] <= 20:
            c.basic_ack(m.delivery_tag)

    ch.basic_consume(qa, on_message)
    ch.basic_consume(qb, on_message)
    while counts[b"qa"] + counts[b"qb"] < 20:
        conn.process_data_events(time_limit=1)
    check(counts[b"qa"] >= 5 and counts[b"qb"] >= 5,
          f"first 20 deliveries under a shared limit of 1: {counts}, want both queues served")
    step(f"freed credit shared between the queues: {counts}")
    ch.close()


def main():
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(float(os.environ.get("SMOKE_TIMEOUT", "60"))))
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        prefix = f"prefetch-{uuid.uuid4().hex[:8]}-"
        no_ack_held(conn, prefix)
        shared_fairly(conn, prefix)
        conn.close()
    except Mismatch as e:
        print(f"prefetch.py: FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    except (pika.exceptions.AMQPError, OSError) as e:
        print(f"prefetch.py: FAIL: {e!r}", file=sys.stderr, flush=True)
        return 1
    print("prefetch.py: PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

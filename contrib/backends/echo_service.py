#!/usr/bin/env python3
"""echo_service.py - a backend for bayeux-fcgi in Python (docs/backend.md).

Listens to bayeuxd's event stream and answers through its app endpoint:

  * a client's CometD remoteCall('/echo', data, ...) arrives as the event
    "service:/service/echo"; we answer with a deliver to that clientId on the
    same channel, with the same id, data {"echo": data} and successful true,
    which is what completes the call in the client;
  * every new session (the event "session.created") gets a greeting: a
    deliver on /service/greeting (a CometD client sees it with
    cometd.addListener('/service/greeting', fn)).

Needs pyzmq (Debian: python3-zmq). Stops cleanly on SIGTERM and SIGINT.

    python3 echo_service.py [--app ENDPOINT] [--events ENDPOINT]

A second mode measures how fast one REQ socket can publish:

    python3 echo_service.py --bench N CHANNEL   (prints "published N in S s: R/s")
"""

import argparse
import json
import signal
import sys
import time

try:
    import zmq
except ImportError:
    sys.exit("echo_service.py: needs pyzmq (Debian: python3-zmq; this is %s)" % sys.executable)

DEFAULT_APP = "ipc:///tmp/bayeux-fcgi/app.sock"
DEFAULT_EVENTS = "ipc:///tmp/bayeux-fcgi/events.sock"
ECHO_TOPIC = "service:/service/echo"
GREETING_CHANNEL = "/service/greeting"
REPLY_TIMEOUT_MS = 5000


def log(*args):
    print("echo_service:", *args, file=sys.stderr, flush=True)


class App:
    """The app endpoint: one REQ socket, one request at a time.

    A REQ socket that never gets its reply cannot send again, so after a
    timeout the socket is thrown away and a new one connected (ZeroMQ's
    "lazy pirate" pattern). linger 0: nothing waits for a bayeuxd that
    went away when we close."""

    def __init__(self, ctx, endpoint):
        self.ctx = ctx
        self.endpoint = endpoint
        self.sock = None
        self._connect()

    def _connect(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.endpoint)

    def request(self, req):
        """Sends req (a dict) and returns the reply (a dict), or None when
        bayeuxd did not answer within REPLY_TIMEOUT_MS."""
        self.sock.send(json.dumps(req, separators=(",", ":")).encode())
        if self.sock.poll(REPLY_TIMEOUT_MS, zmq.POLLIN) == 0:
            log("no reply from", self.endpoint, "to", req.get("op"))
            self._connect()
            return None
        return json.loads(self.sock.recv())

    def close(self):
        self.sock.close(linger=0)


def on_echo(app, ev):
    """Answers a remote call: same channel, same id, successful."""
    req = {"op": "deliver", "clientId": ev["clientId"], "channel": ev["channel"],
           "data": {"echo": ev.get("data")}, "successful": True}
    if "id" in ev:
        req["id"] = ev["id"]
    reply = app.request(req)
    if reply is not None and not reply.get("ok"):
        # unknown_client: the session ended before we answered.
        log("deliver to", ev["clientId"], "refused:", reply.get("error"), reply.get("message"))


def on_session(app, ev):
    reply = app.request({"op": "deliver", "clientId": ev["clientId"],
                         "channel": GREETING_CHANNEL,
                         "data": {"greeting": "welcome", "clientId": ev["clientId"]}})
    if reply is not None and not reply.get("ok"):
        log("greeting", ev["clientId"], "refused:", reply.get("error"), reply.get("message"))


def serve(args):
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))

    ctx = zmq.Context()
    app = App(ctx, args.app)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(args.events)
    # Topics are prefixes: only what we answer reaches us.
    sub.setsockopt_string(zmq.SUBSCRIBE, ECHO_TOPIC)
    sub.setsockopt_string(zmq.SUBSCRIBE, "session.created")
    log("listening on", args.events, "answering through", args.app)
    last_seq = None
    while not stop:
        # A short poll so that a signal is seen at once.
        if sub.poll(200, zmq.POLLIN) == 0:
            continue
        frames = sub.recv_multipart()
        if len(frames) != 2:
            log("skipped an event of", len(frames), "frame(s)")
            continue
        try:
            topic = frames[0].decode()
            ev = json.loads(frames[1])
        except ValueError:
            log("skipped an event that is not UTF-8 JSON")
            continue
        # seq counts every event of bayeuxd, ours are a subset: a gap here
        # is normal. Going back means bayeuxd restarted.
        if last_seq is not None and ev.get("seq", 0) <= last_seq:
            log("bayeuxd restarted (event seq went back)")
        last_seq = ev.get("seq", 0)
        if topic == ECHO_TOPIC:
            on_echo(app, ev)
        elif topic == "session.created":
            on_session(app, ev)
    sub.close(linger=0)
    app.close()
    ctx.term()
    log("stopped")
    return 0


def bench(args):
    """Publishes args.count messages to args.channel on one REQ socket, one
    after the other (each waits for its reply), and prints the rate."""
    ctx = zmq.Context()
    app = App(ctx, args.app)
    start = time.monotonic()
    for i in range(args.count):
        reply = app.request({"op": "publish", "channel": args.channel, "data": {"n": i}})
        if reply is None or not reply.get("ok"):
            log("publish", i, "failed:", reply)
            app.close()
            ctx.term()
            return 1
    elapsed = time.monotonic() - start
    print("published %d in %.3f s: %.0f/s" % (args.count, elapsed, args.count / elapsed))
    app.close()
    ctx.term()
    return 0


def main():
    p = argparse.ArgumentParser(description="Answers CometD remoteCall('/echo', ...) "
                                "and greets new sessions, through bayeuxd.")
    p.add_argument("--app", default=DEFAULT_APP, help="bayeuxd's app-endpoint (%(default)s)")
    p.add_argument("--events", default=DEFAULT_EVENTS,
                   help="bayeuxd's events-endpoint (%(default)s)")
    p.add_argument("--bench", nargs=2, metavar=("N", "CHANNEL"),
                   help="publish N messages to CHANNEL, print the rate, and exit")
    args = p.parse_args()
    if args.bench:
        try:
            args.count = int(args.bench[0])
        except ValueError:
            p.error("--bench: N must be a number")
        if args.count < 1:
            p.error("--bench: N must be at least 1")
        args.channel = args.bench[1]
        return bench(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())

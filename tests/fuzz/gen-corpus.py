#!/usr/bin/env python3
"""gen-corpus.py - writes the attack reproducers of the fuzz corpus.

    tests/fuzz/gen-corpus.py        (re)writes tests/fuzz/corpus/*/attack-*

Each input replays one way a client has tried to hurt the server: a batch
of 1,000 handshakes, integers beyond 64 bits, NULs escaped into ids and
names, odd browser cookies, a foreign Origin, a message at the body limit,
an ack session that never acknowledges while its queue grows, many
publishes in one request. The files are committed; this script is how they
were made, so a change of an input format (docs/fuzzing.md) is one edit
here. The other seeds of the corpus are written by hand or merged from
libFuzzer runs.
"""
import json
import os
import sys

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

BIG_NUMBERS = [
    "18446744073709551616",         # 2^64
    "18446744073709551615",         # 2^64 - 1
    "-9223372036854775809",         # INT64_MIN - 1
    "9223372036854775808",          # INT64_MAX + 1
    "1e400",
    "-1e400",
    "1e-400",
    "123456789012345678901234567890",
    "0.1000000000000000055511151231257827021181583404541015625",
    "3.14159265358979323846264338327950288419716939937510582097494459",
]


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "attack-" + name), "wb") as f:
        f.write(data)


def compact(v):
    return json.dumps(v, separators=(",", ":"))


HANDSHAKE = ('{"channel":"/meta/handshake","version":"1.0",'
             '"supportedConnectionTypes":["long-polling"]}')


def handshakes(n):
    # The shortest a client can send, so that 1,000 fit in 30 KB.
    return "[" + ",".join(['{"channel":"/meta/handshake"}'] * n) + "]"


def publishes(n, size=1):
    return "[" + ",".join('{"channel":"/chat/a","clientId":"abc","data":"%s"}'
                          % ("m%d" % i).ljust(size, "x") for i in range(n)) + "]"


def number_batches():
    out = []
    for i, num in enumerate(BIG_NUMBERS):
        out.append('[{"channel":"/chat/a","clientId":"abc","id":"%d","data":%s}]' % (i, num))
    out.append('[{"channel":"/chat/a","data":{"n":[%s]},"id":18446744073709551616}]'
               % ",".join(BIG_NUMBERS))
    return out


NUL_BATCHES = [
    '[{"channel":"/meta/connect","clientId":"abc\\u0000zz","connectionType":"long-polling"}]',
    '[{"channel":"/meta/subscribe","clientId":"abc","subscription":"/chat/a\\u0000x"}]',
    '[{"channel":"/meta/subscribe","clientId":"abc","subscription":["/chat/b","/x\\u0000"]}]',
    '[{"channel":"/chat/a\\u0000x","clientId":"abc","data":1}]',
    '[{"channel":"/chat/a","clientId":"abc","id":"1\\u00002","data":1}]',
    '[{"channel":"/chat/a","clientId":"abc","data":"\\u0000","ext":{"a\\u0000b":"\\u0000"}}]',
    # json-c cuts a key at its NUL: this data would be delivered as {"a":2}.
    '[{"channel":"/chat/a","clientId":"abc","data":{"a\\u0000b":1,"a":2}}]',
]


# ---------------------------------------------------------------- batch
# A request body; an optional first control byte picks tighter limits
# (fuzz_batch.c): bits 0-1 depth 1..4, bits 2-3 messages 1, 2, 3, 1000,
# bit 4 a body limit one byte short of the body.

def gen_batch():
    write("batch", "handshakes-1000.json", handshakes(1000))
    # The same under max_messages 1000 and depth 4.
    write("batch", "handshakes-1000-limit", b"\x0f" + handshakes(1000).encode())
    write("batch", "handshakes-1001-limit", b"\x0f" + handshakes(1001).encode())
    write("batch", "publishes-200.json", publishes(200))
    for i, b in enumerate(number_batches()):
        write("batch", "number-%d.json" % i, b)
    for i, b in enumerate(NUL_BATCHES):
        write("batch", "nul-%d.json" % i, b)
    # One message of almost 64 KiB (what libFuzzer may grow to), and the
    # same one byte over the limit.
    big = publishes(1, 65000)
    write("batch", "big-message.json", big)
    write("batch", "big-message-over-limit", b"\x10" + big.encode())


# ---------------------------------------------------------------- http
# Line 0 the settings (CORS origins, SameSite, max body 256 KiB/16/64/200,
# messages, depth; each character taken modulo its choices), lines 1-9
# REQUEST_METHOD CONTENT_TYPE CONTENT_LENGTH QUERY_STRING HTTP_COOKIE
# HTTP_ORIGIN HTTPS and the two preflight headers ("!" for absent), then the
# body (fuzz_http.c).

def http(settings, body, method="POST", ctype="application/json", clen=None,
         query="!", cookie="!", origin="!", https="!", acrm="!", acrh="!"):
    if isinstance(body, str):
        body = body.encode()
    if clen is None:
        clen = str(len(body))
    head = "\n".join([settings, method, ctype, clen, query, cookie, origin, https,
                      acrm, acrh]) + "\n"
    return head.encode("latin-1") + body


def gen_http():
    write("http", "handshakes-1000", http("", handshakes(1000)))
    write("http", "publishes-200", http("", publishes(200)))
    for i, b in enumerate(number_batches()):
        write("http", "number-%d" % i, http("", b))
    for i, b in enumerate(NUL_BATCHES):
        write("http", "nul-%d" % i, http("", b))
    # A NUL through URL decoding is a raw NUL: refused.
    write("http", "nul-form", http("", "message=%5B%7B%22clientId%22%3A%22a%00b%22%7D%5D",
                                   ctype="application/x-www-form-urlencoded"))
    write("http", "nul-jsonp", http("", b"", method="GET", ctype="!",
                                    query="jsonp=cb&message=%5B%7B%22a%22%3A%22%00%22%7D%5D"))
    # Browser cookies a client made up: one character, odd bytes, many.
    hs = "[" + HANDSHAKE + "]"
    write("http", "cookie-one-char", http("", hs, cookie="BAYEUX_BROWSER=a"))
    write("http", "cookie-odd-bytes",
          http("", hs, cookie="BAYEUX_BROWSER=\xff\x80\x7f; BAYEUX_BROWSER=a\tb"))
    write("http", "cookie-long", http("", hs, cookie="BAYEUX_BROWSER=" + "z" * 200))
    write("http", "cookie-many",
          http("", hs, cookie="; ".join("BAYEUX_BROWSER=%d" % i for i in range(40))))
    write("http", "cookie-quoted", http("", hs, cookie='BAYEUX_BROWSER="abc"; x=BAYEUX_BROWSER=d'))
    # A foreign Origin, with the default CORS setting and with a list.
    write("http", "origin-default", http("", hs, origin="https://evil.example",
                                         cookie="BAYEUX_BROWSER=abc"))
    write("http", "origin-null", http("", hs, origin="null"))
    write("http", "origin-listed-lookalike",
          http("\x03", hs, origin="https://a.example.evil.example"))
    write("http", "origin-preflight", http("", b"", method="OPTIONS", ctype="!", clen="!",
                                           origin="https://evil.example", acrm="POST",
                                           acrh="Content-Type"))
    # A message at the body limit (200 bytes with settings "\0\0\x03"),
    # and one byte over; then a Content-Length that claims the default
    # 256 KiB limit plus one.
    for name, n in (("at-limit", 200), ("over-limit", 201)):
        msg = '[{"channel":"/chat/a","clientId":"abc","data":"'
        msg += "x" * (n - len(msg) - 3) + '"}]'
        assert len(msg) == n
        write("http", "body-" + name, http("\x00\x00\x03", msg))
    write("http", "body-claims-too-much", http("", hs, clen=str(256 * 1024 + 1)))
    write("http", "body-claims-limit", http("", hs, clen=str(256 * 1024)))


# ---------------------------------------------------------------- engine
# Byte 0 and 1 the configuration, then opcodes (fuzz_engine.c).

class Program:
    def __init__(self, a, b):
        self.b = bytearray([a, b])

    def op(self, *bs):
        self.b += bytes(bs)
        return self

    # how: bit 0 callback-polling, bit 1 second responder, bits 2-4 cookie
    # (0 none, 1 "aaaa", 2 "bbbb", 3 "0", 4 64 "z"; 5-7 one the engine set)
    def handshake(self, how=0, ack=False, client=0):
        return self.op(4, how, client, 0, (1 << 3) if ack else 0)

    def connect(self, client, how=0, extra=1):
        # extra 1: advice timeout 0 (answer at once); bit 3: ext.ack
        # extra >> 5 (an old number: nothing acknowledged)
        return self.op(5, how, client, 0, extra)

    def subscribe(self, client, sub=2, how=0):
        return self.op(6, how, client, 0, sub)   # 2: "/chat/**"

    def publish(self, client, data=2, how=0):
        return self.op(15, how, client, 0, data)  # on /chat/a

    def tick(self, step):
        return self.op(2, step)

    def cancel(self, sel):
        return self.op(3, sel)

    def raw(self, text, how=0):
        # opcode 9: "$d" is the d-th session's clientId, "$*" k, k KiB of x
        if isinstance(text, str):
            text = text.encode("latin-1")   # "$*\xfa": the byte 0xfa
        assert len(text) <= 255, text
        self.b += bytes([9, how, len(text)]) + text
        return self

    def ops(self):
        return self.b


# Configuration byte a: bits 0-1 timeout 20000/100/0/5000 ms, bits 2-3
# queue 10000/1/2/0, bit 4 no browser binding, bit 5 interval, bit 6 sends
# fail, bit 7 four sessions per address. Byte b: bits 0-1 maxInterval, 2-3
# sweep, bit 4 duplicate status, bit 5 release at the end, bit 6 database
# (ack, history, restarts), bit 7 timestamps.
NO_WAIT = 0x12          # timeout 0, queue 10000, no binding
HOLD = 0x10             # timeout 20000, queue 10000, no binding
DB = 0x40


def gen_engine():
    # An ack session that never acknowledges while its queue grows, and
    # connects again and again: every connect carries everything again.
    p = Program(NO_WAIT, DB).handshake(ack=True).handshake().subscribe(0)
    for rnd in range(4):
        for k in range(6):
            p.publish(1, data=(2, 6, 1)[k % 3])
        p.connect(0).connect(0, extra=8 | 1)
    p.op(0xfb)          # bayeuxd restarts: the queue comes back
    p.connect(0).connect(0)
    write("engine", "ack-never-acks", p.ops())

    # The same with one message near the body limit (250 KiB) and a few
    # of 16 KiB; kept short, as make check mutates every seed.
    p = Program(NO_WAIT, DB).handshake(ack=True).handshake().subscribe(0)
    p.raw('[{"channel":"/chat/a","clientId":"$1","data":"$*\xfa"}]')
    for k in range(4):
        p.raw('[{"channel":"/chat/b/c","clientId":"$1","data":["$*\x10"]}]')
    p.connect(0).connect(0).connect(0, extra=8 | 1)
    write("engine", "ack-big-messages", p.ops())

    # Connects held and abandoned (cancelled, superseded) while messages
    # queue up unacknowledged.
    p = Program(HOLD, DB | 0x20).handshake(ack=True).handshake().subscribe(0)
    for k in range(5):
        p.connect(0, extra=0)           # held: nothing queued yet, or all again
        p.publish(1)
        p.connect(0, extra=0)           # supersedes the held one, if any
        p.cancel(2)                     # the client goes away
        p.publish(1, data=6)
        p.tick(7)
    write("engine", "ack-abandoned-connects", p.ops())

    # One request of 8 handshakes uses up an address's sessions (4 here);
    # a newcomer from the same address is refused until they expire.
    hs8 = "[" + ",".join(['{"channel":"/meta/handshake"}'] * 8) + "]"
    p = Program(0x80 | NO_WAIT, 0).raw(hs8).raw(hs8).handshake()
    p.tick(15).tick(15).handshake().connect(0)
    write("engine", "handshakes-per-request", p.ops())
    p = Program(NO_WAIT, 0)
    for k in range(12):
        p.raw(hs8)
    p.handshake().connect(3)
    write("engine", "handshakes-many", p.ops())

    # Integers beyond 64 bits and long decimals, published and delivered.
    p = Program(NO_WAIT, 0).handshake().handshake().subscribe(0)
    for num in BIG_NUMBERS:
        p.raw('[{"channel":"/chat/a","clientId":"$1","data":%s}]' % num)
    p.raw('[{"channel":"/chat/a","clientId":"$1","data":{"n":[%s]}}]'
          % ",".join(BIG_NUMBERS[:5]))
    p.raw('[{"channel":"/chat/a","clientId":"$1","id":18446744073709551616,"data":1}]')
    p.connect(0)
    write("engine", "big-numbers", p.ops())
    # The same through the database (history and replay).
    p = Program(NO_WAIT, DB).handshake().handshake().subscribe(0)
    for num in BIG_NUMBERS[:6]:
        p.raw('[{"channel":"/chat/a","clientId":"$1","data":%s}]' % num)
    p.op(0xfb).connect(0)
    p.raw('[{"channel":"/meta/subscribe","clientId":"$0","subscription":"/chat/a",'
          '"ext":{"replay":0}}]')
    p.connect(0)
    write("engine", "big-numbers-db", p.ops())

    # NULs escaped into clientId, subscription, channel, id and ext.
    p = Program(NO_WAIT, 0).handshake().handshake().subscribe(0)
    for text in (
        '[{"channel":"/meta/connect","clientId":"$0\\u0000zz","connectionType":'
        '"long-polling","advice":{"timeout":0}}]',
        '[{"channel":"/chat/a","clientId":"$1\\u0000zz","data":1}]',
        '[{"channel":"/meta/subscribe","clientId":"$0","subscription":"/chat/a\\u0000x"}]',
        '[{"channel":"/meta/subscribe","clientId":"$0","subscription":["/chat/b","/x\\u0000"]}]',
        '[{"channel":"/meta/unsubscribe","clientId":"$0","subscription":"/chat/**\\u0000"}]',
        '[{"channel":"/chat/a\\u0000x","clientId":"$1","data":2}]',
        '[{"channel":"/chat/a","clientId":"$1","data":"\\u0000","ext":{"a\\u0000b":"\\u0000"}}]',
        '[{"channel":"/chat/a","clientId":"$1","id":"1\\u00002","data":4}]',
        '[{"channel":"/chat/a","clientId":"$1","data":{"a\\u0000b":1,"a":2}}]',
        '[{"channel":"/meta/handshake\\u0000","version":"1.0"}]',
        '[{"channel":"/meta/disconnect","clientId":"$1\\u0000"}]',
    ):
        p.raw(text)
    p.connect(0)
    write("engine", "nul-identifiers", p.ops())

    # Browser ids a client made up: "0" (one character), 64 "z", with
    # browser binding on; then the same session from another cookie.
    p = Program(0x02, 0).handshake(how=3 << 2).handshake(how=4 << 2)
    p.connect(0, how=3 << 2).connect(1, how=4 << 2).connect(0, how=1 << 2)
    p.connect(1, how=0).publish(0, how=3 << 2).publish(1, how=2 << 2)
    write("engine", "odd-cookies", p.ops())

    # Many publishes in one request, to a subscriber with a small queue.
    pub = '{"channel":"/chat/a","clientId":"$1","data":%d}'
    batch = "[" + ",".join(pub % k for k in range(5)) + "]"
    for queue, name in ((0, "many-publishes"), (1, "many-publishes-queue-1")):
        p = Program(NO_WAIT | (queue << 2), 0).handshake().handshake().subscribe(0)
        for k in range(10):
            p.raw(batch)
        p.connect(0).connect(0)
        write("engine", name, p.ops())


def main():
    gen_batch()
    gen_http()
    gen_engine()
    return 0


if __name__ == "__main__":
    sys.exit(main())

// Security: handshake tokens (auth = off|optional|required),
// channel rules with a {name} template and channel-default, the create
// permission, the limits (max-message-size, max-sessions-per-address,
// publish-rate), handshake abuse (max-handshakes-per-request, handshake-rate,
// unconnected-expiry, the client address behind a proxy), exact numbers and
// identifiers (big integers, NUL in a clientId, the BAYEUX_BROWSER cookie),
// refusals on the event stream and in the stats op, and the periodic stats
// channel.
//
// Each test restarts bayeuxd with the flags it needs (useDispatcherFlags)
// and brings back the harness's bayeuxd after. Tokens are minted here with
// node's crypto exactly as common/token.h says (v1.<b64url JSON>.<b64url
// HMAC-SHA256 of "v1.<b64url JSON>">); one test also mints with the Python
// snippet of docs/security.md run by /usr/bin/python3. The app endpoint and
// the event stream ($BX_APP, $BX_EVENTS) are spoken through /usr/bin/python3
// with python3-zmq in child processes (tests that need it skip without it).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import {
    BX_URL, BX_TMP, TIMEOUT_MS, opts, uniq, sleep, until, withTimeout, rawClient,
    useDispatcherFlags, newCometD, cometdConnected, cometdSubscribe, httpRequest, onLines,
    nginxOpts,
} from './lib.mjs';

const T = TIMEOUT_MS;
const APP = process.env.BX_APP || '';
const EVENTS = process.env.BX_EVENTS || '';
const PYTHON = '/usr/bin/python3';

const DENIED = '403:denied_by_security_policy:';
const E = {
    handshake: '403::handshake_denied',
    subscribe: DENIED + 'subscribe_denied',
    publish: DENIED + 'publish_denied',
    create: DENIED + 'create_denied',
    tooLarge: '413::message_too_large',
    tooMany: '403::too_many_sessions',
    rate: '429::publish_rate_exceeded',
    handshakes: '400::too_many_handshakes',
    handshakeRate: '429::handshake_rate_exceeded',
};
const REFUSED_KEYS = ['message_too_large', 'too_many_sessions', 'publish_rate_exceeded',
    'handshake_denied', 'subscribe_denied', 'publish_denied', 'create_denied',
    'too_many_handshakes', 'handshake_rate_exceeded'];

// ------------------------------------------------------------------ tokens

const SECRET = 'sec-test-' + crypto.randomBytes(12).toString('hex');
const OTHER_SECRET = 'sec-other-' + crypto.randomBytes(12).toString('hex');
const now = () => Math.floor(Date.now() / 1000);
const b64url = (s) => Buffer.from(s).toString('base64url');     // no "=" padding

// A token for sub: payload {"sub","exp"[,"iat"]}; exp defaults to an hour on.
function mint(sub, { secret = SECRET, exp = now() + 3600, iat } = {}) {
    const payload = { sub, exp };
    if (iat !== undefined) payload.iat = iat;
    const head = 'v1.' + b64url(JSON.stringify(payload));
    return head + '.' + crypto.createHmac('sha256', secret).update(head).digest('base64url');
}

// A valid token's signature on another payload (sub changed to "admin").
function tampered(sub = 'alice') {
    const sig = mint(sub).split('.')[2];
    return 'v1.' + b64url(JSON.stringify({ sub: 'admin', exp: now() + 3600 })) + '.' + sig;
}

// The Python snippet of docs/security.md, verbatim but for where the secret
// file and the subject come from.
const PY_MINT = `import sys
import base64, hashlib, hmac, json, re, time

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

def mint_token(secret: bytes, sub: str, ttl: int = 3600, now=None) -> str:
    """A bayeux-fcgi handshake token for sub, valid for ttl seconds."""
    if not re.fullmatch(r"[A-Za-z0-9_!~()$@.-]{1,128}", sub):
        raise ValueError("subject must be 1-128 of A-Z a-z 0-9 - _ ! ~ ( ) $ @ .")
    now = int(time.time()) if now is None else now
    payload = json.dumps({"sub": sub, "iat": now, "exp": now + ttl}).encode()
    head = "v1." + b64url(payload)
    sig = hmac.new(secret, head.encode("ascii"), hashlib.sha256).digest()
    return head + "." + b64url(sig)

secret = open(sys.argv[1], "rb").read().rstrip(b"\\r\\n")
token = mint_token(secret, sys.argv[2])
print(token)
`;

// ------------------------------------------------------------------ python / zmq

// A small helper run by /usr/bin/python3: "req ENDPOINT" answers each stdin
// line (a JSON request) with the app endpoint's reply on one line; "events
// ENDPOINT" prints every event as "TOPIC JSON" lines until SIGTERM.
const PY_ZMQ = `import json, signal, sys
import zmq
mode, endpoint = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
if mode == "req":
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 5000)
    s.connect(endpoint)
    for line in sys.stdin:
        if not line.strip():
            continue
        s.send(line.strip().encode())
        try:
            print(s.recv().decode(), flush=True)
        except zmq.Again:
            print(json.dumps({"timeout": True}), flush=True)
            sys.exit(3)
else:
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(endpoint)
    print("ready", flush=True)
    while True:
        frames = s.recv_multipart()
        print(frames[0].decode() + " " + frames[-1].decode(), flush=True)
`;

let pyDir = null;
function pyFile(name, text) {
    if (!pyDir) {
        pyDir = fs.mkdtempSync(path.join(BX_TMP || '/tmp', 'security-'));
    }
    const f = path.join(pyDir, name);
    if (!fs.existsSync(f)) fs.writeFileSync(f, text);
    return f;
}

const HAVE_ZMQ = (() => {
    try {
        execFileSync(PYTHON, ['-c', 'import zmq'], { stdio: 'ignore' });
        return true;
    } catch {
        return false;
    }
})();

// opts() plus the app endpoint and the event stream through python3-zmq.
function zopts(timeout = 20000) {
    const o = opts(timeout);
    if (o.skip) return o;
    if (!APP || !EVENTS) o.skip = 'BX_APP / BX_EVENTS not set';
    else if (!HAVE_ZMQ) o.skip = `${PYTHON} cannot import zmq (python3-zmq)`;
    return o;
}

// One request to the app endpoint; resolves with the parsed reply.
function appRequest(req) {
    return withTimeout(new Promise((resolve, reject) => {
        const child = spawn(PYTHON, [pyFile('bx_zmq_helper.py', PY_ZMQ), 'req', APP],
            { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { err += d; });
        child.on('error', reject);
        child.on('close', (code) => {
            try {
                const reply = JSON.parse(out.trim().split('\n')[0]);
                if (reply.timeout) {
                    reject(new Error(`app endpoint: no reply to ${JSON.stringify(req)}`));
                } else {
                    resolve(reply);
                }
            } catch {
                reject(new Error(`app request exit ${code}: ${out} ${err}`));
            }
        });
        child.stdin.end(JSON.stringify(req) + '\n');
    }), 10000, `app endpoint reply to ${req.op}`);
}

// The event stream in a python child: every event in .events as
// { topic, ev }. The after hook stops it.
class EventTap {
    constructor(t) {
        this.events = [];
        this.stderr = '';
        this.ready = false;
        this.child = spawn(PYTHON, [pyFile('bx_zmq_helper.py', PY_ZMQ), 'events', EVENTS],
            { stdio: ['ignore', 'pipe', 'pipe'] });
        this.exited = new Promise((resolve) => this.child.on('close', resolve));
        onLines(this.child.stdout, (line) => {
            if (line === 'ready') {
                this.ready = true;
                return;
            }
            const sp = line.indexOf(' ');
            let ev = null;
            try {
                ev = JSON.parse(line.slice(sp + 1));
            } catch {
                ev = { unparsed: line.slice(sp + 1) };
            }
            this.events.push({ topic: line.slice(0, sp), ev });
        });
        this.child.stderr.on('data', (d) => { this.stderr += d; });
        t.after(() => this.stop());
    }

    refused() {
        return this.events.filter((e) => e.topic === 'refused').map((e) => e.ev);
    }

    // A SUB socket hears nothing until its subscription reached bayeuxd's
    // PUB: handshake throwaway sessions until an event about one shows up.
    async sync(t) {
        try {
            await until(() => this.ready || this.child.exitCode !== null, 5000,
                'the event listener to start');
        } catch (e) {
            throw new Error(`${e.message}: ${this.stderr}`);
        }
        assert.ok(this.ready, `the event listener exited: ${this.stderr}`);
        for (let i = 0; i < 50; i += 1) {
            const c = rawClient(t, { name: 'sync' });
            const from = this.events.length;
            await c.handshake();
            try {
                await until(() => this.events.slice(from).some((e) => e.ev.clientId &&
                    e.ev.clientId === c.clientId), 200, 'sync');
                await c.close();
                return;
            } catch {
                await c.close();
            }
        }
        throw new Error(`the event listener never heard a session.created: ${this.stderr}`);
    }

    async stop() {
        if (this.child.exitCode === null && this.child.signalCode === null) {
            this.child.kill('SIGTERM');
        }
        await withTimeout(this.exited, 5000, 'the event listener to exit');
    }
}

// ------------------------------------------------------------------ clients

// Asserts a Bayeux reply is the refusal error.
function assertRefused(r, error, what) {
    assert.ok(r.reply, `${what}: no reply in ${r.res.status} ${r.res.body}`);
    assert.equal(r.reply.successful, false, `${what} should be refused: ${r.res.body}`);
    assert.equal(r.reply.error, error, `${what}: error`);
}

function assertOk(r, what) {
    assert.ok(r.reply && r.reply.successful === true, `${what} should succeed: ${r.res.body}`);
}

// A raw client with a session (handshake with ext.token when given, first
// connect), asserting both succeed.
async function session(t, name, token) {
    const c = rawClient(t, { name });
    const h = await c.handshake(token === undefined ? {} : { ext: { token } });
    assertOk(h, `${name}: handshake`);
    const cn = await c.connect({}, { timeoutMs: T + 5000 });
    assertOk(cn, `${name}: first connect`);
    return c;
}

// A raw handshake that must be refused with error; returns the reply.
async function refusedHandshake(t, name, token, error = E.handshake) {
    const c = rawClient(t, { name });
    const h = await c.handshake(token === undefined ? {} : { ext: { token } });
    assertRefused(h, error, `${name}: handshake`);
    assert.equal(h.reply.clientId, undefined, `${name}: a refused handshake has no clientId`);
    return h.reply;
}

// An HTTP proxy in front of the Bayeux endpoint that counts the
// /meta/handshake messages going through it: what a client does by itself
// after a refusal. .url is the endpoint to give the client.
async function handshakeCounter(t) {
    const target = new URL(BX_URL);
    const counter = { handshakes: 0, replies: [] };
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const body = Buffer.concat(chunks);
            try {
                for (const m of [].concat(JSON.parse(body.toString('utf8')))) {
                    if (m && m.channel === '/meta/handshake') counter.handshakes += 1;
                }
            } catch {
                // not JSON: not ours to count
            }
            const up = http.request({
                hostname: target.hostname, port: target.port, path: req.url,
                method: req.method, headers: req.headers, agent: false,
            }, (ur) => {
                res.writeHead(ur.statusCode, ur.headers);
                ur.pipe(res);
            });
            up.on('error', () => res.destroy());
            up.end(body);
        });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
    }));
    counter.url = `http://127.0.0.1:${server.address().port}${target.pathname}${target.search}`;
    return counter;
}

// A CometD handshake; resolves with the reply, successful or not.
function cometdTryHandshake(cometd, props) {
    return withTimeout(new Promise((resolve) => cometd.handshake(props, resolve)), 10000,
        'CometD handshake reply');
}

// A CometD client (through a handshake counter, quick backoff so that a
// retry would show within the test) whose handshake with token is refused:
// asserts the reply, that the client stops by itself, and that it sends no
// second handshake.
async function cometdRefused(t, what, token) {
    const counter = await handshakeCounter(t);
    const cometd = newCometD(t, { url: counter.url, config: { backoffIncrement: 100 } });
    const props = token === undefined ? undefined : { ext: { token } };
    const reply = await cometdTryHandshake(cometd, props);
    assert.equal(reply.successful, false, `${what}: ${JSON.stringify(reply)}`);
    assert.equal(reply.error, E.handshake, `${what}: error`);
    assert.equal(reply.advice && reply.advice.reconnect, 'none', `${what}: advice.reconnect`);
    return { cometd, counter, what };
}

// A CometD client that handshakes through a proxy counting its handshakes
// and, refused with reconnect handshake, keeps trying: its refusals, and a
// promise of its first successful handshake.
async function retryingCometD(t) {
    const counter = await handshakeCounter(t);
    const cometd = newCometD(t, { url: counter.url, config: { backoffIncrement: 100 } });
    const failures = [];
    const joined = new Promise((resolve) => {
        cometd.addListener('/meta/handshake', (m) => {
            if (m.successful) resolve(m);
            else failures.push(m);
        });
    });
    cometd.handshake();
    return { counter, cometd, failures, joined };
}

// ------------------------------------------------------------------ auth

test('auth=off (the harness\'s bayeuxd): tokens are ignored', opts(), async (t) => {
    const bad = mint('alice', { secret: OTHER_SECRET });
    const c = await session(t, 'anon-bad-token', bad);
    const ch = '/' + uniq('off');
    await c.mustSubscribe(ch);
    await c.mustPublish(ch, 'x');
    await c.pollUntil((r) => r.some((m) => m.channel === ch), T * 2 + 2000, 'own message');
});

test('auth=required: a valid token gets a session; none, tampered, expired or another ' +
    'secret\'s token: 403::handshake_denied, reconnect none, and the CometD client stops',
opts(40000), async (t) => {
    // The secret in a file, as "head -c 32 /dev/urandom | base64" makes it:
    // 44 characters and a newline that is not part of the secret.
    const secretText = crypto.randomBytes(32).toString('base64');
    const secretFile = path.join(BX_TMP, uniq('secret'));
    fs.writeFileSync(secretFile, secretText + '\n', { mode: 0o600 });
    await useDispatcherFlags(t, ['--auth=required', `--auth-secret-file=${secretFile}`]);
    const tok = (sub, o = {}) => mint(sub, { secret: secretText, ...o });

    // Valid: the CometD client gets a session and connects.
    const good = newCometD(t);
    const connected = cometdConnected(good);
    const h = await cometdTryHandshake(good, { ext: { token: tok('alice') } });
    assert.equal(h.successful, true, `valid token: ${JSON.stringify(h)}`);
    await connected;
    assert.equal(good.getClientId(), h.clientId);
    assert.notEqual(good.getStatus(), 'disconnected');

    // Refused, all at once: each client on its own counting proxy.
    const sig = tok('alice').split('.')[2];
    const forged = 'v1.' + b64url(JSON.stringify({ sub: 'admin', exp: now() + 3600 })) +
        '.' + sig;
    const cases = await Promise.all([
        cometdRefused(t, 'no token', undefined),
        cometdRefused(t, 'tampered token', forged),
        cometdRefused(t, 'expired token', tok('alice', { exp: now() - 10 })),
        cometdRefused(t, 'another secret\'s token', mint('alice', { secret: OTHER_SECRET })),
    ]);
    // With backoffIncrement 100 ms a client that retried would have sent
    // several handshakes by now.
    await sleep(1500);
    for (const { cometd, counter, what } of cases) {
        assert.equal(cometd.getStatus(), 'disconnected', `${what}: the client stopped`);
        assert.equal(counter.handshakes, 1, `${what}: handshakes sent (no retry)`);
    }

    // Raw: more ways to be invalid, all refused the same way.
    const raw = [
        ['secret with its newline', mint('alice', { secret: secretText + '\n' })],
        ['iat an hour ahead', tok('alice', { iat: now() + 3600 })],
        ['malformed', 'v1.abc.def'],
        ['bad subject', tok('a/b')],
        ['expiring now', tok('alice', { exp: now() })],
    ];
    for (const [what, token] of raw) {
        const reply = await refusedHandshake(t, what, token);
        assert.equal(reply.advice && reply.advice.reconnect, 'none', `${what}: advice.reconnect`);
    }
    // iat within the leeway is fine.
    await session(t, 'iat 30 s ahead', tok('alice', { iat: now() + 30 }));

    // A token minted by the Python snippet of docs/security.md from the
    // same file is accepted.
    const py = execFileSync(PYTHON, ['-c', PY_MINT, secretFile, 'user-42.eu@example.com'],
        { encoding: 'utf8' }).trim();
    assert.match(py, /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/, `python token: ${py}`);
    await session(t, 'python token', py);
    // ... and so is one minted here with the same subject and times.
    const payload = JSON.parse(Buffer.from(py.split('.')[1], 'base64url').toString());
    assert.equal(payload.sub, 'user-42.eu@example.com');
    await session(t, 'node token', tok(payload.sub, { exp: payload.exp, iat: payload.iat }));

    // ... and one from "bayeuxctl token", reading the same file from a config.
    const ctl = process.env.BX_BAYEUXCTL;
    assert.ok(ctl && fs.existsSync(ctl), `bayeuxctl built beside bayeuxd (${ctl})`);
    {
        const conf = path.join(BX_TMP, uniq('ctl') + '.conf');
        fs.writeFileSync(conf, `auth = required\nauth-secret-file = ${secretFile}\n`);
        const minted = execFileSync(ctl, ['--config', conf, 'token', 'carol', '120'],
            { encoding: 'utf8' }).trim();
        const p2 = JSON.parse(Buffer.from(minted.split('.')[1], 'base64url').toString());
        assert.equal(p2.sub, 'carol', 'bayeuxctl token: the subject');
        assert.ok(p2.exp > now() + 100 && p2.exp <= now() + 121, 'bayeuxctl token: the expiry');
        await session(t, 'bayeuxctl token', minted);
    }
});

test('auth=optional: no token is an anonymous session, a bad token is refused',
    opts(), async (t) => {
        await useDispatcherFlags(t, ['--auth=optional', `--auth-secret=${SECRET}`]);
        const anon = await session(t, 'anonymous');
        const ch = '/' + uniq('opt');
        await anon.mustSubscribe(ch);
        await anon.mustPublish(ch, 'anon');
        await anon.pollUntil((r) => r.some((m) => m.channel === ch), T * 2 + 2000,
            'own message');
        await session(t, 'alice', mint('alice'));
        for (const [what, token] of [
            ['another secret', mint('alice', { secret: OTHER_SECRET })],
            ['expired', mint('alice', { exp: now() - 1 })],
            ['tampered', tampered()],
            ['empty string', ''],
        ]) {
            const reply = await refusedHandshake(t, what, token);
            assert.equal(reply.advice && reply.advice.reconnect, 'none',
                `${what}: advice.reconnect`);
        }
    });

// ------------------------------------------------------------------ channel rules

// A rule that does not mention create lets those it lets subscribe (or
// publish) create: the first subscriber of /user/alice/inbox needs no
// create=.
const RULES = '/user/{id}/** subscribe=subject publish=nobody; ' +
    '/chat/** subscribe=anyone publish=authenticated; ' +
    '/admin/** subscribe=nobody publish=nobody';

test('channel rules, channel-default=closed: templates, authenticated, nobody, ' +
    'unmatched channels; backends are trusted', zopts(30000), async (t) => {
    await useDispatcherFlags(t, ['--auth=optional', `--auth-secret=${SECRET}`,
        '--channel-default=closed', `--channel-rules=${RULES}`]);
    const alice = await session(t, 'alice', mint('alice'));
    const anon = await session(t, 'anonymous');
    const inbox = '/user/alice/inbox';

    // /user/{id}/**: subject only.
    await alice.mustSubscribe(inbox);
    assertRefused(await alice.subscribe('/user/bob/inbox'), E.subscribe, 'alice -> bob\'s inbox');
    assertRefused(await anon.subscribe(inbox), E.subscribe, 'anonymous -> alice\'s inbox');
    // Patterns: one that fixes the template segment to the subject reaches
    // only the subject's channels; one that fixes it to another does not.
    assertRefused(await alice.subscribe('/user/bob/*'), E.subscribe, 'alice -> /user/bob/*');
    assertRefused(await alice.subscribe('/user/bob/**'), E.subscribe, 'alice -> /user/bob/**');
    assertOk(await alice.subscribe('/user/alice/*'), 'alice -> /user/alice/*');
    assertOk(await alice.subscribe('/user/alice/**'), 'alice -> /user/alice/**');
    // Nobody publishes to an inbox, its subject included.
    assertRefused(await alice.publish(inbox, 'self'), E.publish, 'alice publishes to her inbox');
    assertRefused(await anon.publish(inbox, 'spam'), E.publish, 'anonymous publishes to inbox');

    // /chat/**: anyone subscribes, only the authenticated publish.
    const room = '/chat/' + uniq('room');
    await anon.mustSubscribe(room);
    assertRefused(await anon.publish(room, 'anon'), E.publish, 'anonymous publishes to chat');
    await alice.mustPublish(room, 'hello');
    const got = await anon.pollUntil((r) => r.some((m) => m.channel === room), T * 2 + 2000,
        'alice\'s chat message');
    assert.deepEqual(got.filter((m) => m.channel === room).map((m) => m.data), ['hello'],
        'only alice\'s message reached the room');

    // /admin/**: nobody.
    assertRefused(await alice.subscribe('/admin/panel'), E.subscribe, 'alice -> /admin/panel');
    assertRefused(await anon.subscribe('/admin/panel'), E.subscribe, 'anonymous -> /admin');
    assertRefused(await alice.publish('/admin/panel', 'x'), E.publish, 'alice publishes /admin');

    // No rule matches: closed.
    const other = '/' + uniq('other');
    assertRefused(await alice.subscribe(other), E.subscribe, `alice -> ${other}`);
    assertRefused(await anon.subscribe(other), E.subscribe, `anonymous -> ${other}`);
    assertRefused(await alice.publish(other, 'x'), E.publish, `alice publishes ${other}`);
    // Wildcards that would reach other subjects' channels: no way around.
    assertRefused(await anon.subscribe('/**'), E.subscribe, 'anonymous -> /**');
    assertRefused(await alice.subscribe('/**'), E.subscribe, 'alice -> /**');
    assertRefused(await alice.subscribe('/user/**'), E.subscribe, 'alice -> /user/**');
    assertRefused(await alice.subscribe('/user/*'), E.subscribe, 'alice -> /user/*');

    // A backend publishes where no client may.
    const pub = await appRequest({ op: 'publish', channel: inbox, data: { from: 'backend' } });
    assert.equal(pub.ok, true, `app publish: ${JSON.stringify(pub)}`);
    assert.equal(pub.reached, 1, 'reached alice once');
    const mine = await alice.pollUntil((r) => r.some((m) => m.channel === inbox),
        T * 2 + 2000, 'the backend\'s message');
    assert.deepEqual(mine.filter((m) => m.channel === inbox).map((m) => m.data),
        [{ from: 'backend' }]);
    // Meta channels are never governed by rules: the sessions still connect.
    assertOk(await anon.connect({}, { timeoutMs: T + 5000 }), 'anonymous connect');
});

test('channel rules, channel-default=open: unmatched channels are open, rules still hold',
    opts(), async (t) => {
        await useDispatcherFlags(t, ['--auth=optional', `--auth-secret=${SECRET}`,
            '--channel-default=open', `--channel-rules=${RULES}`]);
        const alice = await session(t, 'alice', mint('alice'));
        const anon = await session(t, 'anonymous');
        const other = '/' + uniq('other');
        await anon.mustSubscribe(other);
        await anon.mustPublish(other, 'anon');
        await alice.mustPublish(other, 'alice');
        await anon.pollUntil((r) => r.filter((m) => m.channel === other).length >= 2,
            T * 2 + 2000, 'both messages');
        assertRefused(await anon.subscribe('/admin/x'), E.subscribe, 'anonymous -> /admin/x');
        assertRefused(await alice.subscribe('/user/bob/inbox'), E.subscribe, 'alice -> bob');
        const room = '/chat/' + uniq('room');
        await anon.mustSubscribe(room);
        assertRefused(await anon.publish(room, 'x'), E.publish, 'anonymous publishes to chat');
        // Open, but a wildcard may not reach what the rules close: /** and
        // /user/** overlap /user/{id}/** (and /admin/**).
        for (const w of ['/**', '/user/**', '/admin/*']) {
            assertRefused(await anon.subscribe(w), E.subscribe, `anonymous -> ${w}`);
            assertRefused(await alice.subscribe(w), E.subscribe, `alice -> ${w}`);
        }
        // ... while one that overlaps only open channels is fine.
        await anon.mustSubscribe('/' + uniq('free') + '/**');
        await anon.mustSubscribe('/chat/*');
    });

test('create=authenticated: the first subscriber (or publisher) must be authenticated',
    opts(), async (t) => {
        await useDispatcherFlags(t, ['--auth=optional', `--auth-secret=${SECRET}`,
            '--channel-rules=/room/** create=authenticated; ' +
            '/closed/** subscribe=anyone publish=anyone',
            '--channel-default=open']);
        const alice = await session(t, 'alice', mint('alice'));
        const anon = await session(t, 'anonymous');
        const room = '/room/' + uniq('r');

        assertRefused(await anon.subscribe(room), E.create, 'anonymous creates by subscribing');
        assertRefused(await anon.subscribe('/room/*'), E.create,
            'anonymous creates the pattern /room/*');
        // No subscriber, no history: publishing would create it.
        assertRefused(await anon.publish(room, 'x'), E.create, 'anonymous creates by publishing');
        await alice.mustSubscribe(room);
        // Now it exists: the anonymous session may join and publish.
        await anon.mustSubscribe(room);
        await anon.mustPublish(room, 'anon');
        const got = await alice.pollUntil((r) => r.some((m) => m.channel === room),
            T * 2 + 2000, 'the anonymous message');
        assert.deepEqual(got.filter((m) => m.channel === room).map((m) => m.data), ['anon']);
        // An authenticated session creates by publishing too.
        const fresh = '/room/' + uniq('p');
        await alice.mustPublish(fresh, 'first');
        // Other channels (open): anyone creates.
        await anon.mustSubscribe('/' + uniq('free'));
    });

test('channel-default=closed: a rule without create= lets its subscribers and publishers ' +
    'create, create= restricts them', opts(), async (t) => {
    await useDispatcherFlags(t, ['--auth=optional', `--auth-secret=${SECRET}`,
        '--channel-default=closed',
        '--channel-rules=/nc/** subscribe=anyone publish=anyone; ' +
        '/auth/** subscribe=anyone publish=anyone create=authenticated; ' +
        '/never/** subscribe=anyone publish=anyone create=nobody']);
    const alice = await session(t, 'alice', mint('alice'));
    const anon = await session(t, 'anonymous');
    await anon.mustSubscribe('/nc/' + uniq('c'));
    await anon.mustPublish('/nc/' + uniq('p'), 'x');
    const ch = '/auth/' + uniq('a');
    assertRefused(await anon.subscribe(ch), E.create, `anonymous creates ${ch}`);
    await alice.mustSubscribe(ch);
    await anon.mustSubscribe(ch);
    const never = '/never/' + uniq('n');
    assertRefused(await alice.subscribe(never), E.create, `alice creates ${never}`);
    assertRefused(await alice.publish(never, 'x'), E.create, `alice publishes to ${never}`);
});

// ------------------------------------------------------------------ limits

test('max-message-size=1000: a 2,000-byte publish is refused, a 500-byte one passes',
    opts(), async (t) => {
        await useDispatcherFlags(t, ['--max-message-size=1000']);
        const c = await session(t, 'sizer');
        const ch = '/' + uniq('size');
        await c.mustSubscribe(ch);
        assertRefused(await c.publish(ch, 'L'.repeat(2000)), E.tooLarge, '2,000-byte publish');
        await c.mustPublish(ch, 's'.repeat(500));
        const got = await c.pollUntil((r) => r.some((m) => m.channel === ch), T * 2 + 2000,
            'the small message');
        await sleep(200);
        assert.deepEqual(c.received(ch).map((m) => m.data.length), [500],
            'only the small message was delivered');
        assert.equal(got.length, 1);
    });

test('max-sessions-per-address=3: the 4th handshake is refused until one leaves; ' +
    'CometD retries (reconnect handshake) and gets in', opts(30000), async (t) => {
    await useDispatcherFlags(t, ['--max-sessions-per-address=3', '--database=:memory:']);
    const a = await session(t, 's1');
    await session(t, 's2');
    await session(t, 's3');
    const reply = await refusedHandshake(t, 's4', undefined, E.tooMany);
    assert.equal(reply.advice && reply.advice.reconnect, 'handshake', 's4: advice.reconnect');

    // The CometD client, refused with reconnect handshake, keeps trying.
    const { counter, cometd, failures, joined } = await retryingCometD(t);
    await until(() => counter.handshakes >= 2, 5000, 'CometD to retry its handshake');
    assert.equal(failures[0] && failures[0].error, E.tooMany, 'CometD was refused');
    assert.notEqual(cometd.getStatus(), 'disconnected', 'CometD keeps trying');

    // One session leaves: the CometD client's next try gets in.
    assertOk(await a.disconnect(), 's1: disconnect');
    const ok = await withTimeout(joined, 10000, 'CometD to get a session');
    assert.ok(ok.clientId, 'CometD has a session');
    // Three again: the next one is refused.
    await refusedHandshake(t, 's5', undefined, E.tooMany);
});

test('publish-rate=5: a burst of 20 gets about 5 through, the rest 429; a second later ' +
    'publishes pass again', opts(), async (t) => {
    await useDispatcherFlags(t, ['--publish-rate=5']);
    const sub = await session(t, 'subscriber');
    const ch = '/' + uniq('rate');
    await sub.mustSubscribe(ch);
    const p = await session(t, 'publisher');
    const msgs = [];
    for (let n = 0; n < 20; n += 1) {
        msgs.push({ channel: ch, data: n, id: p.nextId(), clientId: p.clientId });
    }
    const res = await p.send(msgs);
    assert.equal(res.status, 200);
    const replies = msgs.map((m) => res.messages.find((r) => r.id === m.id));
    assert.ok(replies.every(Boolean), `a reply to each publish: ${res.body.slice(0, 500)}`);
    const passed = msgs.filter((m, i) => replies[i].successful === true).map((m) => m.data);
    const refused = replies.filter((r) => r.successful === false);
    t.diagnostic(`burst of 20: ${passed.length} passed, ${refused.length} refused`);
    assert.ok(passed.length >= 5 && passed.length <= 7, `passed ${passed.length} (5-7)`);
    assert.deepEqual(passed.slice(0, 5), [0, 1, 2, 3, 4], 'the first five pass');
    assert.equal(passed.length + refused.length, 20);
    for (const r of refused) assert.equal(r.error, E.rate, `refusal: ${JSON.stringify(r)}`);
    // The subscriber gets exactly the ones that passed.
    await sub.pollUntil((r) => r.filter((m) => m.channel === ch).length >= passed.length,
        T * 2 + 2000, 'the messages that passed');
    await sleep(200);
    assert.deepEqual(sub.received(ch).map((m) => m.data), passed);
    // A new second, a new bucket.
    await sleep(1100);
    await p.mustPublish(ch, 'later');
    await p.mustPublish(ch, 'later2');
});

// ------------------------------------------------------------------ handshakes

const HANDSHAKE = {
    channel: '/meta/handshake', version: '1.0', minimumVersion: '1.0',
    supportedConnectionTypes: ['long-polling'],
};

test('one POST of 1,000 handshakes (harness defaults): one session, 999 refused; a ' +
    'bystander from the same address gets in at once', opts(30000), async (t) => {
    const attacker = rawClient(t, { name: 'attacker' });
    const batch = [];
    for (let i = 0; i < 1000; i += 1) batch.push({ ...HANDSHAKE, id: String(i + 1) });
    const res = await attacker.send(batch, { cookie: false });
    assert.equal(res.status, 200, res.body.slice(0, 300));
    const replies = res.messages.filter((m) => m.channel === '/meta/handshake');
    assert.equal(replies.length, 1000, 'a reply for each handshake');
    const ok = replies.filter((m) => m.successful === true);
    const refused = replies.filter((m) => m.error === E.handshakes);
    assert.equal(ok.length, 1, 'one session');
    assert.equal(refused.length, 999, `999 refused with ${E.handshakes}`);
    assert.deepEqual(refused.map((m) => m.id).slice(0, 2), ['2', '3'], 'each by its id');

    // Someone else behind the same address (the same NAT): in at once.
    const t0 = process.hrtime.bigint();
    const bystander = rawClient(t, { name: 'bystander' });
    const h = await bystander.handshake();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    t.diagnostic(`bystander's handshake during the attack: ${h.reply.successful ? 'ok' :
        h.reply.error} in ${ms.toFixed(1)} ms`);
    assertOk(h, 'bystander: handshake');
    assertOk(await bystander.connect({}, { timeoutMs: T + 5000 }), 'bystander: connect');
});

test('handshake-rate=2, handshake-burst=5: the sixth handshake at once is refused with ' +
    '429 and advice to handshake again; CometD retries and gets in', opts(30000), async (t) => {
    await useDispatcherFlags(t, ['--handshake-rate=2', '--handshake-burst=5',
        '--database=:memory:']);
    for (let i = 0; i < 5; i += 1) {
        const c = rawClient(t, { name: `h${i}` });
        assertOk(await c.handshake(), `h${i}: handshake`);
    }
    const reply = await refusedHandshake(t, 'h5', undefined, E.handshakeRate);
    assert.equal(reply.advice && reply.advice.reconnect, 'handshake', 'advice.reconnect');

    const { failures, joined } = await retryingCometD(t);
    const ok = await withTimeout(joined, 10000, 'CometD to get a session');
    assert.ok(ok.clientId, 'CometD has a session');
    t.diagnostic(`CometD: ${failures.length} refused tries before it got in`);
    for (const f of failures) assert.equal(f.error, E.handshakeRate, JSON.stringify(f));
});

test('unconnected-expiry=500ms: a session that never connects is gone within a second, ' +
    'a connected one lives on', opts(30000), async (t) => {
    await useDispatcherFlags(t, ['--unconnected-expiry=500ms', '--sweep-period=100ms',
        '--database=:memory:']);
    const idle = rawClient(t, { name: 'idle' });
    assertOk(await idle.handshake(), 'idle: handshake');
    const live = await session(t, 'live');
    const ch = '/' + uniq('unconnected');
    await sleep(1200);
    const gone = await idle.publish(ch, 1);
    assert.equal(gone.reply.successful, false, gone.res.body);
    assert.equal(gone.reply.error, '402::session_unknown', 'the unconnected session expired');
    assertOk(await live.publish(ch, 1), 'the connected session is still there');
});

test('behind a reverse proxy (nginx realip, X-Forwarded-For from 127.0.0.1): each client ' +
    'address has its own handshake budget', nginxOpts(30000), async (t) => {
    await useDispatcherFlags(t, ['--handshake-rate=1', '--handshake-burst=1',
        '--database=:memory:']);
    const from = (addr) => ({ headers: { 'X-Forwarded-For': addr } });
    const a = rawClient(t, { name: 'a' });
    assertOk(await a.handshake({}, from('192.0.2.10')), 'a: handshake as 192.0.2.10');
    const a2 = rawClient(t, { name: 'a2' });
    const r = await a2.handshake({}, from('192.0.2.10'));
    assert.equal(r.reply.error, E.handshakeRate, '192.0.2.10 used its burst');
    const b = rawClient(t, { name: 'b' });
    assertOk(await b.handshake({}, from('198.51.100.7')), 'b: another address gets in');
    const c = rawClient(t, { name: 'c' });
    assertOk(await c.handshake(), 'c: the proxy itself (no header) too');
});

// ------------------------------------------------------------------ exact data

test('an integer beyond 64 bits, -0 and long decimals are delivered exactly as published',
    opts(), async (t) => {
        const sub = await session(t, 'sub');
        const ch = '/' + uniq('big');
        await sub.mustSubscribe(ch);
        const pub = await session(t, 'pub');
        const numbers = ['123456789012345678901234567890', '-123456789012345678901234567890',
            '18446744073709551616', '-0', '1e400', '0.1',
            '3.14159265358979323846264338327950288'];
        const data = `{"n":[${numbers.join(',')}]}`;
        const text = `[{"channel":"${ch}","clientId":"${pub.clientId}","id":"p1",` +
            `"data":${data}}]`;
        const res = await pub.send(text);
        assert.match(res.body, /"successful":true/, res.body);
        await sub.pollUntil((got) => got.some((m) => m.channel === ch), T * 2 + 2000,
            'the delivery');
        let raw = sub.responses.map((x) => x.body).join('\n');
        assert.ok(raw.includes(`"data":${data}`), `delivered as written: ${raw.slice(0, 600)}`);
        // And as a backend publishes it (bayeuxctl, the app endpoint).
        const ctl = process.env.BX_BAYEUXCTL;
        if (!ctl || !fs.existsSync(ctl) || !APP) return;
        const backendData = '{"from":"backend","n":[98765432109876543210987654321,-0]}';
        execFileSync(ctl, ['--app-endpoint', APP, 'publish', ch, backendData]);
        await sub.pollUntil((got) => got.filter((m) => m.channel === ch).length >= 2,
            T * 2 + 2000, 'the backend\'s delivery');
        raw = sub.responses.map((x) => x.body).join('\n');
        assert.ok(raw.includes(`"data":${backendData}`), `backend's as written: ${raw}`);
    });

test('a clientId with an escaped NUL ("<id>\\u0000zz") is not the session <id>', opts(),
    async (t) => {
        const c = await session(t, 'nul');
        const ch = '/' + uniq('nul');
        const bad = c.clientId + '\u0000zz';
        const r = await c.request({ channel: ch, data: 1, clientId: bad });
        assert.equal(r.reply.successful, false, r.res.body);
        assert.equal(r.reply.error, '402::session_unknown');
        const cn = await c.request({ channel: '/meta/connect', connectionType: 'long-polling',
            clientId: bad });
        assert.equal(cn.reply.error, '402::session_unknown', cn.res.body);
        assertOk(await c.publish(ch, 1), 'the real clientId still works');
    });

test('a BAYEUX_BROWSER cookie the server could not have issued is replaced by a fresh one',
    opts(), async (t) => {
        for (const bad of ['x', 'abc123', 'A'.repeat(26), 'a'.repeat(27), 'a'.repeat(64)]) {
            const c = rawClient(t, { name: `cookie-${bad.length}` });
            c.cookies.set('BAYEUX_BROWSER', bad);
            const h = await c.handshake();
            assertOk(h, `handshake with cookie ${bad}`);
            const set = [].concat(h.res.headers['set-cookie'] || []).join('\n');
            const m = /BAYEUX_BROWSER=([0-9a-z]+);/.exec(set);
            assert.ok(m, `cookie ${bad}: a new BAYEUX_BROWSER is set: ${set}`);
            assert.equal(m[1].length, 26, 'as the server issues them');
            assert.notEqual(m[1], bad);
            // The session is bound to the new cookie (now in the jar).
            assertOk(await c.connect({}, { timeoutMs: T + 5000 }), 'connect with the new cookie');
            const old = await c.request({ channel: '/meta/connect',
                connectionType: 'long-polling' }, { cookie: `BAYEUX_BROWSER=${bad}` });
            assert.equal(old.reply.error, '402::session_unknown', 'not with the made-up one');
        }
        // A cookie the server issued is kept: no new one.
        const c = await session(t, 'kept');
        const again = await c.publish('/' + uniq('kept'), 1);
        assert.equal(again.res.headers['set-cookie'], undefined, 'an issued cookie stays');
    });

// ------------------------------------------------------------------ observability

test('refusals are "refused" events on the event stream and counted by the stats op',
    zopts(30000), async (t) => {
        await useDispatcherFlags(t, ['--auth=optional', `--auth-secret=${SECRET}`,
            '--database=:memory:', '--max-message-size=1000', '--max-sessions-per-address=3',
            '--publish-rate=5',
            '--channel-rules=/deny/** subscribe=nobody publish=nobody; ' +
            '/guarded/** create=authenticated']);
        const tap = new EventTap(t);
        await tap.sync(t);
        const before = await appRequest({ op: 'stats' });
        assert.equal(before.ok, true, JSON.stringify(before));
        assert.equal(typeof before.refused, 'object',
            `stats has refused: ${JSON.stringify(before)}`);
        for (const k of REFUSED_KEYS) {
            assert.equal(typeof before.refused[k], 'number', `stats refused.${k}`);
        }

        const a = await session(t, 'a');
        const expected = [];    // [reason, channel, clientId or undefined]
        await refusedHandshake(t, 'bad token', mint('x', { secret: OTHER_SECRET }));
        expected.push([E.handshake, '/meta/handshake', undefined]);
        assertRefused(await a.subscribe('/deny/x'), E.subscribe, 'subscribe /deny/x');
        expected.push([E.subscribe, '/deny/x', a.clientId]);
        assertRefused(await a.publish('/deny/y', 1), E.publish, 'publish /deny/y');
        expected.push([E.publish, '/deny/y', a.clientId]);
        const guarded = '/guarded/' + uniq('g');
        assertRefused(await a.subscribe(guarded), E.create, 'create by subscribing');
        expected.push([E.create, guarded, a.clientId]);
        const big = '/' + uniq('big');
        assertRefused(await a.publish(big, 'L'.repeat(2000)), E.tooLarge, 'large publish');
        expected.push([E.tooLarge, big, a.clientId]);
        // The rate: a burst of 10 from a new session.
        const b = await session(t, 'b');
        const fast = '/' + uniq('fast');
        const msgs = [];
        for (let n = 0; n < 10; n += 1) {
            msgs.push({ channel: fast, data: n, id: b.nextId(), clientId: b.clientId });
        }
        const res = await b.send(msgs);
        const nRate = res.messages.filter((m) => m.error === E.rate).length;
        assert.ok(nRate >= 3, `burst of 10 at 5/s: ${nRate} refused`);
        for (let i = 0; i < nRate; i += 1) expected.push([E.rate, fast, b.clientId]);
        // a, b, and a third; the fourth is refused.
        await session(t, 'c');
        await refusedHandshake(t, 'd', undefined, E.tooMany);
        expected.push([E.tooMany, '/meta/handshake', undefined]);

        const reasonCount = (list, reason) => list.filter((e) => e.reason === reason).length;
        await until(() => tap.refused().length >= expected.length, 5000,
            `${expected.length} refused events; got ${JSON.stringify(tap.refused())}`);
        await sleep(200);
        const evs = tap.refused();
        assert.equal(evs.length, expected.length,
            `refused events: ${JSON.stringify(evs)}`);
        // A refused subscribe names the channel refused (as "channel", or as
        // "subscription" beside "channel":"/meta/subscribe").
        const names = (e) => [e.channel, e.subscription].flat();
        for (const [reason, channel, clientId] of expected) {
            const ev = evs.find((e) => e.reason === reason && names(e).includes(channel) &&
                e.clientId === clientId);
            assert.ok(ev, `event for ${reason} on ${channel} (clientId ${clientId}): ` +
                JSON.stringify(evs));
            assert.equal(ev.v, 1);
            assert.equal(ev.event, 'refused');
            assert.equal(ev.address, '127.0.0.1', `address of ${reason}`);
            if (clientId === undefined) {
                assert.ok(!('clientId' in ev), `no clientId in a refused handshake: ` +
                    JSON.stringify(ev));
            }
        }

        const after = await appRequest({ op: 'stats' });
        const delta = Object.fromEntries(REFUSED_KEYS.map((k) =>
            [k, after.refused[k] - before.refused[k]]));
        assert.deepEqual(delta, {
            message_too_large: 1,
            too_many_sessions: 1,
            publish_rate_exceeded: nRate,
            handshake_denied: 1,
            subscribe_denied: 1,
            publish_denied: 1,
            create_denied: 1,
            too_many_handshakes: 0,
            handshake_rate_exceeded: 0,
        }, 'stats refused counts');
        for (const k of REFUSED_KEYS) {
            const reason = Object.values(E).find((e) => e.endsWith(':' + k));
            assert.equal(delta[k], reasonCount(evs, reason), `events vs stats for ${k}`);
        }
    });

test('stats-channel: bayeuxd publishes the stats every stats-interval', opts(), async (t) => {
    await useDispatcherFlags(t, ['--stats-channel=/bayeux/stats', '--stats-interval=1s']);
    const cometd = newCometD(t);
    const connected = cometdConnected(cometd);
    const h = await cometdTryHandshake(cometd);
    assert.equal(h.successful, true);
    await connected;
    const got = [];
    const start = Date.now();
    await cometdSubscribe(cometd, '/bayeux/stats', (m) => got.push({ m, at: Date.now() }));
    await until(() => got.length >= 1, 3000, 'a message on /bayeux/stats');
    t.diagnostic(`first stats after ${got[0].at - start} ms: ${JSON.stringify(got[0].m.data)}`);
    const d = got[0].m.data;
    assert.equal(got[0].m.channel, '/bayeux/stats');
    assert.ok(d && typeof d === 'object', 'data is an object');
    assert.ok(d.sessions >= 1, `sessions ${d.sessions}`);
    assert.ok(d.refused && typeof d.refused === 'object', 'refused object');
    for (const k of REFUSED_KEYS) assert.equal(typeof d.refused[k], 'number', `refused.${k}`);
    assert.equal(typeof d.published, 'number', 'the stats op\'s fields');
    // Periodic: another about a second later.
    await until(() => got.length >= 2, 3000, 'a second message on /bayeux/stats');
    const gap = got[1].at - got[0].at;
    assert.ok(gap >= 500 && gap <= 2500, `interval ${gap} ms (1 s)`);
});

test('what the responders refuse (bad JSON, too many messages, too large) is counted by bayeuxd',
    zopts(), async (t) => {
        const before = (await appRequest({ op: 'stats' })).http_refused;
        assert.ok(before, 'the stats have http_refused');
        const post = (body) => httpRequest(BX_URL, {
            method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
        const bad = await post('[{"channel":');
        assert.equal(bad.status, 400, 'malformed JSON: 400');
        const many = await post(JSON.stringify(Array.from({ length: 1001 },
            () => ({ channel: '/meta/connect' }))));
        assert.equal(many.status, 400, 'more than max-messages: 400');
        const big = await post('[' + ' '.repeat(300 * 1024) + ']');
        assert.equal(big.status, 413, 'larger than max-body: 413');
        // The notes travel to bayeuxd without a reply: wait until counted.
        let after;
        for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(50)) {
            after = (await appRequest({ op: 'stats' })).http_refused;
            if (after['400'] >= before['400'] + 2 && after['413'] >= before['413'] + 1) break;
        }
        assert.equal(after['400'] - before['400'], 2, 'two 400s counted');
        assert.equal(after['413'] - before['413'], 1, 'one 413 counted');
    });

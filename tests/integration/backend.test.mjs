// Backends (docs/backend.md) with the real CometD client on the other side:
// bayeuxctl's commands and exit statuses, the event stream, and the examples
// in contrib/backends (the Python echo service answering a remoteCall, the
// shell and PHP publishers). Also measures, without asserting, how fast
// "bayeuxctl publish" in a shell loop and the Python example's REQ loop can
// publish (TAP diagnostics).
//
// The harness runs bayeuxd with --app-endpoint $BX_APP --events-endpoint
// $BX_EVENTS; bayeuxctl is $BX_BAYEUXCTL (default: next to $BX_BAYEUXD).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
    BX_BAYEUXD, BX_SERVER, BX_TMP, MAX_INTERVAL_MS, TIMEOUT_MS, opts, uniq, sleep, until,
    withTimeout, rawClient, newCometD, cometdHandshake, cometdConnected, cometdSubscribe,
    cometdUnsubscribe, cometdPublish, cometdDisconnect, onLines,
} from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BACKENDS = path.resolve(here, '../../contrib/backends');
const APP = process.env.BX_APP || '';
const EVENTS = process.env.BX_EVENTS || '';
const CTL = process.env.BX_BAYEUXCTL ||
    (BX_BAYEUXD ? path.join(path.dirname(BX_BAYEUXD), 'bayeuxctl') : '');
const ENDPOINTS = ['--app', APP, '--events', EVENTS];
const T2 = TIMEOUT_MS * 2;
const QUICK = TIMEOUT_MS / 2;   // "at once": well under the connect hold timeout

function executable(file) {
    try {
        fs.accessSync(file, fs.constants.X_OK);
        return true;
    } catch {
        return false;
    }
}

// opts() plus what these tests need: the app endpoint and bayeuxctl.
function bopts(timeout = 20000, { nginxOnly = false } = {}) {
    const o = opts(timeout);
    if (o.skip) return o;
    if (!APP || !EVENTS) {
        o.skip = 'BX_APP / BX_EVENTS not set (the harness runs bayeuxd without backends)';
    } else if (!CTL || !executable(CTL)) {
        o.skip = `no bayeuxctl at ${CTL || '(unknown)'} (run make, or set BX_BAYEUXCTL)`;
    } else if (nginxOnly && BX_SERVER !== 'nginx') {
        o.skip = `runs behind nginx only (this is ${BX_SERVER})`;
    }
    return o;
}

// Runs a program to its end; resolves with { code, signal, stdout, stderr }.
function runProgram(file, args, { input = null, env = {}, timeoutMs = 30000 } = {}) {
    return new Promise((resolve, reject) => {
        const child = spawn(file, args, { env: { ...process.env, ...env },
            stdio: [input === null ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => { stdout += d; });
        child.stderr.on('data', (d) => { stderr += d; });
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
        });
        child.on('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
        });
        if (input !== null) child.stdin.end(input);
    });
}

// bayeuxctl with the harness's endpoints.
function ctl(args, o = {}) {
    return runProgram(CTL, [...ENDPOINTS, ...args], o);
}

// bayeuxctl that must succeed; resolves with its reply, parsed.
async function ctlOk(args, o = {}) {
    const r = await ctl(args, o);
    assert.equal(r.code, 0, `bayeuxctl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'the reply is one line');
    const reply = JSON.parse(lines[0]);
    assert.equal(reply.v, 1);
    assert.equal(reply.ok, true);
    assert.equal(reply.op, args[0]);
    return reply;
}

// "bayeuxctl events [TOPIC]" in the background: every line parsed into
// { topic, ev } in .events. stop() sends SIGTERM and resolves with the exit
// status (bayeuxctl exits 0 on SIGTERM).
class EventStream {
    constructor(t, topic) {
        this.events = [];
        this.stderr = '';
        this.child = spawn(CTL, [...ENDPOINTS, 'events', ...(topic ? [topic] : [])],
            { stdio: ['ignore', 'pipe', 'pipe'] });
        this.exited = new Promise((resolve) => {
            this.child.on('close', (code, signal) => resolve({ code, signal }));
        });
        onLines(this.child.stdout, (line) => {
            const sp = line.indexOf(' ');
            this.events.push({ topic: line.slice(0, sp), ev: JSON.parse(line.slice(sp + 1)),
                line });
        });
        this.child.stderr.on('data', (d) => { this.stderr += d; });
        t.after(() => this.stop());
    }

    // The first event (after index from) that pred accepts.
    async waitFor(pred, ms, what, from = 0) {
        let found;
        await until(() => (found = this.events.slice(from).find(pred)) !== undefined, ms,
            `event ${what}; got ${this.events.map((e) => e.topic).join(' ')}`);
        return found;
    }

    // A SUB socket hears nothing until its subscription reached bayeuxd's
    // PUB: make throwaway sessions (handshake, disconnect) until one shows
    // up. Any topic filter under "session." hears one of the two events.
    async sync(t) {
        for (let i = 0; i < 50; i++) {
            const c = rawClient(t, { name: 'sync' });
            await c.handshake();
            await c.close();
            try {
                await this.waitFor((e) => e.ev.clientId === c.clientId, 300, 'sync');
                return;
            } catch {
                // not subscribed yet: try again
            }
        }
        throw new Error(`bayeuxctl events never heard a session event: ${this.stderr}`);
    }

    async stop() {
        if (this.child.exitCode === null && this.child.signalCode === null) {
            this.child.kill('SIGTERM');
        }
        return withTimeout(this.exited, 5000, 'bayeuxctl events to exit');
    }
}

// A CometD client that has handshaken and completed its first connect.
async function ready(t) {
    const cometd = newCometD(t);
    const connected = cometdConnected(cometd);
    await cometdHandshake(cometd);
    await connected;
    return cometd;
}

// "bayeuxctl session CID" until it says connected (a /meta/connect is
// held); resolves with that reply.
async function heldConnect(cid) {
    const deadline = Date.now() + TIMEOUT_MS + 3000;
    let s;
    do {
        s = await ctlOk(['session', cid]);
        if (s.connected) return s;
        await sleep(50);
    } while (Date.now() < deadline);
    assert.fail(`session ${cid} never had a connect held: ${JSON.stringify(s)}`);
}

// Messages a CometD client receives on channel, subscribed or not
// (a listener sees deliveries to channels it never subscribed to).
function listen(cometd, channel) {
    const got = [];
    cometd.addListener(channel, (m) => got.push(m));
    return got;
}

// ------------------------------------------------------------------ publish

test('bayeuxctl publish reaches every matching subscriber once', bopts(), async (t) => {
    const base = '/' + uniq('room');
    const ch = `${base}/a`;
    const exact = await ready(t);
    const wild = await ready(t);
    const deep = await ready(t);
    const other = await ready(t);
    await cometdSubscribe(exact, ch, () => {});
    await cometdSubscribe(wild, `${base}/*`, () => {});
    await cometdSubscribe(deep, `${base}/**`, () => {});
    // Two subscriptions that both match: still one delivery. (The CometD
    // client calls both callbacks for it, so count what arrived instead.)
    await cometdSubscribe(deep, ch, () => {});
    await cometdSubscribe(other, `${base}/b`, () => {});
    const got = (c) => c.bxIncoming.filter((m) => m.channel.startsWith(base + '/'));

    const data = { user: 'bot', text: 'hi', u: 'é€😀', list: [1, null, true] };
    const reply = await ctlOk(['publish', ch, JSON.stringify(data)]);
    assert.equal(reply.reached, 3, 'reached: exact, /* and /** (once)');
    await until(() => got(exact).length && got(wild).length && got(deep).length, 5000,
        'the deliveries');
    for (const [k, c] of Object.entries({ exact, wild, deep })) {
        assert.equal(got(c)[0].channel, ch, `${k}: channel`);
        assert.deepEqual(got(c)[0].data, data, `${k}: data`);
    }
    // A held connect is answered at once, not at its timeout.
    await heldConnect(exact.getClientId());
    const t0 = Date.now();
    await ctlOk(['publish', ch, '"quick"']);
    await until(() => got(exact).length >= 2, T2, 'the second delivery');
    assert.ok(Date.now() - t0 < QUICK, `delivered in ${Date.now() - t0} ms: at once, ` +
        `not at the connect's timeout (${TIMEOUT_MS} ms)`);
    // Deeper: only /** matches; DATA from stdin.
    const deeper = await ctlOk(['publish', `${base}/a/b`, '-'], { input: '[1,2,3]\n' });
    assert.equal(deeper.reached, 1);
    await until(() => got(deep).length >= 3, 5000, 'the /** delivery');
    assert.deepEqual(got(deep)[2].data, [1, 2, 3]);
    // Without DATA the data is null.
    const bare = await ctlOk(['publish', ch]);
    assert.equal(bare.reached, 3);
    await until(() => got(exact).length >= 3, 5000, 'the bare delivery');
    assert.equal(got(exact)[2].data, null);
    await sleep(300);
    assert.equal(got(exact).length, 3, 'exact: three deliveries');
    assert.equal(got(wild).length, 3, 'wild: three deliveries');
    assert.equal(got(deep).length, 4, 'deep: each publish once, despite two subscriptions');
    assert.equal(got(other).length, 0, 'a sibling channel hears nothing');
});

test('bayeuxctl publish: /service is refused (1), a pattern is a usage error (2)', bopts(),
    async () => {
        const svc = await ctl(['publish', '/service/x', '1']);
        assert.equal(svc.code, 1);
        assert.match(svc.stderr, /channel_denied/);
        assert.equal(svc.stdout, '');
        const meta = await ctl(['publish', '/meta/x', '1']);
        assert.equal(meta.code, 1);
        assert.match(meta.stderr, /channel_denied/);
        const pat = await ctl(['publish', '/x/*', '1']);
        assert.equal(pat.code, 2);
        assert.match(pat.stderr, /pattern/);
    });

test('bayeuxctl: invalid JSON exits 2 and sends nothing', bopts(), async (t) => {
    const ch = '/' + uniq('bad');
    const sub = await ready(t);
    const got = [];
    await cometdSubscribe(sub, ch, (m) => got.push(m));
    for (const bad of ['{bad', '{"a":1} x', "{'a':1}", 'NaN', '1},{"data":2', '']) {
        const r = await ctl(['publish', ch, bad]);
        assert.equal(r.code, 2, `${JSON.stringify(bad)}: exit ${r.code} ${r.stderr}`);
        assert.match(r.stderr, /not JSON/);
    }
    const stdin = await ctl(['publish', ch, '-'], { input: '{"a":\n' });
    assert.equal(stdin.code, 2, 'bad JSON on stdin');
    const cid = sub.getClientId();
    const dlv = await ctl(['deliver', cid, ch, '[1,']);
    assert.equal(dlv.code, 2, 'deliver checks DATA too');
    // The sentinel is the first and only thing the subscriber sees.
    await ctlOk(['publish', ch, '"sentinel"']);
    await until(() => got.length >= 1, 5000, 'the sentinel');
    await sleep(200);
    assert.deepEqual(got.map((m) => m.data), ['sentinel']);
});

// ------------------------------------------------------------------ deliver

test('bayeuxctl deliver reaches that client only, whatever it subscribed to', bopts(),
    async (t) => {
        const ch = '/' + uniq('dlv');
        const a = await ready(t);
        const b = await ready(t);
        // b subscribes to the channel, a does not: the delivery is a's alone.
        const gotB = [];
        await cometdSubscribe(b, ch, (m) => gotB.push(m));
        const gotA = listen(a, ch);
        const gotSvcA = listen(a, '/service/note');
        const gotSvcB = listen(b, '/service/note');
        await heldConnect(a.getClientId());
        const t0 = Date.now();
        const r = await ctlOk(['deliver', a.getClientId(), ch, '{"to":"a"}']);
        assert.equal(r.ok, true);
        await until(() => gotA.length >= 1, T2, "a's delivery");
        assert.ok(Date.now() - t0 < QUICK, `delivered in ${Date.now() - t0} ms: at once, ` +
            `not at the connect's timeout (${TIMEOUT_MS} ms)`);
        await ctlOk(['deliver', a.getClientId(), '/service/note', '"private"']);
        await until(() => gotSvcA.length >= 1, 5000, "a's service delivery");
        assert.deepEqual(gotA[0].data, { to: 'a' });
        assert.equal(gotSvcA[0].data, 'private');
        // b: a publish afterwards arrives, the deliveries never did.
        await ctlOk(['publish', ch, '"after"']);
        await until(() => gotB.length >= 1, 5000, "b's publish");
        assert.deepEqual(gotB.map((m) => m.data), ['after']);
        assert.equal(gotSvcB.length, 0);
    });

test('bayeuxctl deliver to an unknown clientId exits 1 (unknown_client)', bopts(), async () => {
    const r = await ctl(['deliver', 'nosuchclient0000000000000', '/x', '1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown_client/);
    assert.equal(r.stdout, '');
    const s = await ctl(['session', 'nosuchclient0000000000000']);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /unknown_client/);
    const d = await ctl(['deliver', 'nosuchclient0000000000000', '/meta/connect', '1']);
    assert.equal(d.code, 1, 'deliver on /meta/** is refused');
});

// ------------------------------------------------------------------ disconnect

test('bayeuxctl disconnect ends the session: the client stops, the stream says kicked',
    bopts(), async (t) => {
        const stream = new EventStream(t, 'session.removed');
        const removedOnly = new EventStream(t, 'session.');
        await stream.sync(t);
        await removedOnly.sync(t);
        const cometd = await ready(t);
        const cid = cometd.getClientId();
        const advice = [];
        cometd.addListener('/meta/connect', (m) => advice.push(m.advice));
        // The command answers the held connect.
        await heldConnect(cid);
        const t0 = Date.now();
        await ctlOk(['disconnect', cid]);
        await until(() => cometd.isDisconnected(), T2, 'the CometD client to stop');
        assert.ok(Date.now() - t0 < QUICK, `the held connect was answered at once ` +
            `(${Date.now() - t0} ms)`);
        assert.ok(advice.some((a) => a && a.reconnect === 'none'),
            `advice reconnect none; got ${JSON.stringify(advice)}`);
        const ev = await stream.waitFor((e) => e.ev.clientId === cid, 5000, 'session.removed');
        assert.equal(ev.topic, 'session.removed');
        assert.equal(ev.ev.event, 'session.removed');
        assert.equal(ev.ev.reason, 'kicked');
        // The topic is a prefix: "session.removed" hears no session.created.
        assert.ok(stream.events.every((e) => e.topic === 'session.removed'));
        assert.ok(removedOnly.events.every((e) => e.topic.startsWith('session.')));
        const again = await ctl(['session', cid]);
        assert.equal(again.code, 1, 'the session is gone');
        assert.match(again.stderr, /unknown_client/);
        const st = await stream.stop();
        assert.equal(st.code, 0, `bayeuxctl events exits 0 on SIGTERM (${st.signal})`);
    });

// ------------------------------------------------------------------ questions

test('bayeuxctl sessions, session, subscribers, stats', bopts(), async (t) => {
    const base = '/' + uniq('q');
    const cometd = await ready(t);
    const cid = cometd.getClientId();
    await cometdSubscribe(cometd, `${base}/a`, () => {});
    await cometdSubscribe(cometd, `${base}/**`, () => {});

    const s = await heldConnect(cid);
    assert.equal(s.clientId, cid);
    assert.equal(s.connected, true, 'connected while its connect is held');
    assert.equal(s.ack, false);
    assert.equal(typeof s.created, 'number');
    assert.ok(Math.abs(s.created - Date.now()) < 60000, `created ${s.created} is ms now`);
    assert.deepEqual([...s.subscriptions].sort(), [`${base}/**`, `${base}/a`].sort());
    assert.equal(s.queued, 0);

    const all = await ctlOk(['sessions']);
    assert.equal(typeof all.count, 'number');
    assert.ok(Array.isArray(all.sessions));
    if (all.count <= 1000) assert.equal(all.sessions.length, all.count);
    const mine = all.sessions.filter((x) => x.clientId === cid);
    assert.equal(mine.length, 1, 'listed once');
    assert.equal(mine[0].subscriptions, 2, 'sessions counts the subscriptions');
    assert.equal(mine[0].ack, false);
    assert.equal(typeof mine[0].queued, 'number');
    assert.equal(typeof mine[0].connected, 'boolean');

    const subA = await ctlOk(['subscribers', `${base}/a`]);
    assert.equal(subA.channel, `${base}/a`);
    assert.deepEqual(subA.subscribers, [cid], 'two matching subscriptions, one session');
    assert.equal(subA.count, 1);
    const subB = await ctlOk(['subscribers', `${base}/b/c`]);
    assert.deepEqual(subB.subscribers, [cid], '/** matches');
    const none = await ctlOk(['subscribers', '/' + uniq('nobody')]);
    assert.equal(none.count, 0);
    assert.deepEqual(none.subscribers, []);

    const before = await ctlOk(['stats']);
    for (const k of ['sessions', 'channels', 'parked', 'published', 'delivered', 'dropped',
        'expired', 'acked', 'replayed', 'histories']) {
        assert.equal(typeof before[k], 'number', `stats.${k}`);
    }
    assert.equal(typeof before.store, 'object');
    assert.ok(before.sessions >= 1);
    await ctlOk(['publish', `${base}/a`, '1']);
    const after = await ctlOk(['stats']);
    assert.equal(after.published, before.published + 1, 'published counts the publish');
    assert.ok(after.delivered >= before.delivered, 'delivered never goes down');
    // --quiet prints nothing.
    const q = await ctl(['--quiet', 'stats']);
    assert.equal(q.code, 0);
    assert.equal(q.stdout, '');
});

// ------------------------------------------------------------------ events

test('events: session.created, subscribe, unsubscribe, service, session.removed',
    bopts(), async (t) => {
        const stream = new EventStream(t);
        await stream.sync(t);
        const from = stream.events.length;
        const cometd = await ready(t);
        const cid = cometd.getClientId();
        const created = await stream.waitFor((e) => e.topic === 'session.created' &&
            e.ev.clientId === cid, 5000, 'session.created', from);
        assert.equal(created.ev.v, 1);
        assert.equal(created.ev.event, 'session.created');
        assert.equal(created.ev.ack, false);
        assert.match(created.ev.address, /^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/);
        assert.equal(typeof created.ev.time, 'number');
        assert.ok(Math.abs(created.ev.time - Date.now()) < 60000, 'time is ms since the epoch');

        const ch = '/' + uniq('ev');
        const sub = await cometdSubscribe(cometd, ch, () => {});
        const s = await stream.waitFor((e) => e.topic === 'subscribe' && e.ev.clientId === cid,
            5000, 'subscribe', from);
        assert.equal(s.ev.channel, ch);
        assert.equal(s.ev.event, 'subscribe');
        await cometdUnsubscribe(cometd, sub);
        const u = await stream.waitFor((e) => e.topic === 'unsubscribe' &&
            e.ev.clientId === cid, 5000, 'unsubscribe', from);
        assert.equal(u.ev.channel, ch);

        // A client's publish to /service/**: the event carries its id.
        const svc = `/service/${uniq('svc')}`;
        await cometdPublish(cometd, svc, { q: 1 });
        const sv = await stream.waitFor((e) => e.topic === `service:${svc}`, 5000, 'service',
            from);
        assert.equal(sv.ev.event, 'service');
        assert.equal(sv.ev.clientId, cid);
        assert.equal(sv.ev.channel, svc);
        assert.equal(typeof sv.ev.id, 'string');
        assert.deepEqual(sv.ev.data, { q: 1 });

        await cometdDisconnect(cometd);
        const r = await stream.waitFor((e) => e.topic === 'session.removed' &&
            e.ev.clientId === cid, 5000, 'session.removed', from);
        assert.equal(r.ev.reason, 'disconnect');

        // seq numbers the events of this bayeuxd run, in order, without gaps
        // (this stream takes every topic).
        const seqs = stream.events.map((e) => e.ev.seq);
        for (let i = 1; i < seqs.length; i++) {
            assert.equal(seqs[i], seqs[i - 1] + 1, `seq after ${seqs[i - 1]}`);
        }
        assert.equal((await stream.stop()).code, 0);
    });

test('events: a session with no connect is removed as expired',
    bopts(MAX_INTERVAL_MS + 20000, { nginxOnly: true }), async (t) => {
        const stream = new EventStream(t, 'session.removed');
        await stream.sync(t);
        const c = rawClient(t, { name: 'silent' });
        await c.handshake();
        const r = await stream.waitFor((e) => e.ev.clientId === c.clientId,
            MAX_INTERVAL_MS + 10000, 'session.removed of the silent session');
        assert.equal(r.ev.reason, 'expired');
        c.disconnected = true;   // nothing left to disconnect
    });

// ------------------------------------------------------------------ examples

// A python3 that can import zmq (Debian: python3-zmq): $BX_PYTHON, the one
// on PATH, or Debian's (a PATH may put another python3 first).
function findPython() {
    for (const py of [process.env.BX_PYTHON, 'python3', '/usr/bin/python3']) {
        if (!py) continue;
        try {
            execFileSync(py, ['-c', 'import zmq'], { stdio: 'ignore' });
            return py;
        } catch {
            // try the next
        }
    }
    return null;
}

// Starts the Python echo service; stop() sends SIGTERM and resolves with
// its exit status.
function startEcho(t, py) {
    const child = spawn(py, [path.join(BACKENDS, 'echo_service.py'), '--app', APP,
        '--events', EVENTS], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => child.on('close', (code, signal) =>
        resolve({ code, signal })));
    const stop = async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        return withTimeout(exited, 5000, 'echo_service.py to exit');
    };
    t.after(stop);
    return { stop, log: () => stderr };
}

function remoteCall(cometd, target, data, timeout) {
    return new Promise((resolve) => cometd.remoteCall(target, data, timeout, resolve));
}

test('echo_service.py answers a CometD remoteCall and greets new sessions',
    bopts(60000, { nginxOnly: true }), async (t) => {
        const py = findPython();
        if (!py) {
            t.skip('no python3 with pyzmq (Debian: python3-zmq)');
            return;
        }
        const echo = startEcho(t, py);
        const cometd = await ready(t);
        const data = { text: 'hi', n: [1, 2, 3], u: 'é€😀' };
        // Until the service's SUB socket is subscribed, calls go unanswered
        // and time out on the client side.
        let reply;
        for (let i = 0; i < 20; i++) {
            reply = await remoteCall(cometd, '/echo', data, 1000);
            if (reply.successful) break;
        }
        assert.equal(reply.successful, true, `remoteCall: ${JSON.stringify(reply)}; ` +
            `service: ${echo.log()}`);
        assert.deepEqual(reply.data, { echo: data });
        assert.equal(reply.channel, '/service/echo');
        // Once it is up, a call is answered well within the timeout.
        await heldConnect(cometd.getClientId());
        const start = Date.now();
        const again = await remoteCall(cometd, 'echo', 'second', 5000);
        const rtt = Date.now() - start;
        assert.equal(again.successful, true);
        assert.equal(again.data.echo, 'second');
        t.diagnostic(`remoteCall round trip through the Python service: ${rtt} ms`);
        assert.ok(rtt < QUICK, `the answer is delivered at once (${rtt} ms)`);

        // A new session is greeted on /service/greeting.
        const fresh = newCometD(t);
        const greetings = listen(fresh, '/service/greeting');
        const connected = cometdConnected(fresh);
        await cometdHandshake(fresh);
        await connected;
        await until(() => greetings.length >= 1, TIMEOUT_MS + 5000, 'the greeting');
        assert.equal(greetings[0].data.greeting, 'welcome');
        assert.equal(greetings[0].data.clientId, fresh.getClientId());

        const st = await echo.stop();
        assert.equal(st.code, 0, `echo_service.py exits 0 on SIGTERM: ${echo.log()}`);
    });

test('publish.sh publishes each line with bayeuxctl and reports bad ones',
    bopts(20000, { nginxOnly: true }), async (t) => {
        const ch = '/' + uniq('sh');
        const sub = await ready(t);
        const got = [];
        await cometdSubscribe(sub, ch, (m) => got.push(m));
        const file = path.join(BX_TMP, `${uniq('lines')}.jsonl`);
        fs.writeFileSync(file, '{"n":1}\n\nnot json\n{"n":2}\n"last, no newline"');
        const env = { BAYEUXCTL: CTL };
        const r = await runProgram(path.join(BACKENDS, 'publish.sh'),
            [`--app=${APP}`, ch, file], { env });
        assert.equal(r.code, 2, `one line was not JSON: ${r.stderr}`);
        assert.match(r.stderr, /3 published, 1 skipped/);
        await until(() => got.length >= 3, 5000, 'the three lines');
        assert.deepEqual(got.map((m) => m.data), [{ n: 1 }, { n: 2 }, 'last, no newline']);
        // From stdin, all good: exit 0.
        const s = await runProgram(path.join(BACKENDS, 'publish.sh'), [`--app=${APP}`, ch],
            { env, input: '[4]\n' });
        assert.equal(s.code, 0, s.stderr);
        await until(() => got.length >= 4, 5000, 'the stdin line');
        // A refused channel stops it: exit 1.
        const d = await runProgram(path.join(BACKENDS, 'publish.sh'),
            [`--app=${APP}`, '/service/x'], { env, input: '1\n2\n' });
        assert.equal(d.code, 1, d.stderr);
    });

test('publish.php publishes one message with php-zmq', bopts(20000, { nginxOnly: true }),
    async (t) => {
        let why = null;
        try {
            execFileSync('php', ['-r', 'exit(extension_loaded("zmq") ? 0 : 3);'],
                { stdio: 'ignore' });
        } catch (e) {
            why = e.status === 3 ? "php has no zmq extension (Debian: php-zmq)"
                : 'php is not installed (Debian: php-cli and php-zmq)';
        }
        if (why) {
            t.skip(why);
            return;
        }
        const ch = '/' + uniq('php');
        const sub = await ready(t);
        const got = [];
        await cometdSubscribe(sub, ch, (m) => got.push(m));
        const data = { from: 'php', list: [], obj: {}, u: 'é' };
        const r = await runProgram('php', [path.join(BACKENDS, 'publish.php'), ch,
            JSON.stringify(data), APP]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /reached 1 session/);
        await until(() => got.length >= 1, 5000, 'the PHP message');
        assert.deepEqual(got[0].data, data, 'objects stay objects, arrays arrays');
        const bad = await runProgram('php', [path.join(BACKENDS, 'publish.php'), '/service/x',
            '1', APP]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /channel_denied/);
    });

// ------------------------------------------------------------------ rates

test('publish rates: bayeuxctl per message, Python on one REQ socket (measured)',
    bopts(120000, { nginxOnly: true }), async (t) => {
        const ch = '/' + uniq('rate');
        // One process per message, from a shell loop: what a cron job or a
        // shell script pays.
        const n = 300;
        const script = 'for i in $(seq "$1"); do "$2" --quiet --app "$3" publish "$4" ' +
            '"{\\"n\\":$i}" || exit 1; done';
        let start = process.hrtime.bigint();
        const sh = await runProgram('bash', ['-c', script, 'loop', String(n), CTL, APP, ch],
            { timeoutMs: 110000 });
        let secs = Number(process.hrtime.bigint() - start) / 1e9;
        assert.equal(sh.code, 0, sh.stderr);
        t.diagnostic(`bayeuxctl publish, one process per message: ${n} in ` +
            `${secs.toFixed(2)} s = ${Math.round(n / secs)}/s (no subscribers)`);

        const py = findPython();
        if (!py) {
            t.diagnostic('no python3 with pyzmq: the Python rate is not measured');
            return;
        }
        const m = 5000;
        start = process.hrtime.bigint();
        const r = await runProgram(py, [path.join(BACKENDS, 'echo_service.py'), '--app', APP,
            '--bench', String(m), ch], { timeoutMs: 110000 });
        secs = Number(process.hrtime.bigint() - start) / 1e9;
        assert.equal(r.code, 0, r.stderr);
        t.diagnostic(`Python, one REQ socket, request after reply: ${r.stdout.trim()} ` +
            `(no subscribers; ${secs.toFixed(2)} s with interpreter start)`);
    });

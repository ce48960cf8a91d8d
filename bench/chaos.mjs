// The chaos schedule and its checker, run by bench/chaos through
// tests/integration/harness.sh (node --test; its BX_CTL kills and restarts
// the pieces). Read bench/chaos first: it sets the environment below.
//
//   CHAOS_SEED       the schedule's seed (printed at the start and the end)
//   CHAOS_DURATION   seconds of faults; then everything comes back and settles
//   CHAOS_DBFS       the small tmpfs the database lives on ("" when not root:
//                    the disk-full fault is skipped, CHAOS_DBFS_SKIP says why)
//   CHAOS_REPORT     file that receives the report; its last line is the verdict
//
// The load. Raw HTTP publishers (one per stream, one publish per request,
// never retried) publish {p, n} with n = 0, 1, 2... on /chaos/<p>, and record
// for each n when it was sent, when it was answered, and whether the answer
// was "successful": true. A burst publisher does the same on /chaos/big with
// messages near max-body. Subscribers of three modes take /chaos/**: the npm
// CometD client with the AckExtension (mode cometd-ack), without it (cometd),
// and the Faye client (faye); the CometD ones carry the ReloadExtension. Each
// records every delivery with the page it reached (a reload starts a new page
// on the same session) and the session it belonged to.
//
// The faults, drawn from the seed (the first ones cover every kind once, in
// a seeded order; then by weight), one after the other at 1.5-4.5 s gaps:
// kill -9 of bayeuxd (then started again), kill -9 of one responder process,
// of all of them (nginx, Apache: bayeux-fcgi and its workers, then started
// again; lighttpd: every process it spawned), a restart of the web server, a
// subscriber aborting its requests mid long-poll, a CometD page reload,
// slow and non-reading clients (raw HTTP sessions subscribed to /chaos/**
// whose long-poll response is never read, or read a byte a second), a burst
// of large messages, and the database's disk filling up (a file fills the
// tmpfs; removed 2-6 s later). A supervisor starts bayeuxd again whenever it
// stopped by itself, once there is space again.
//
// The rules the checker applies (docs/persistence.md, "The guarantee").
// A message is expected at a subscriber when its publish was answered
// successful, was sent after the subscriber's subscription was confirmed, and
// was answered before that session ended (the client saw 402 or handshook
// again). A message whose publish was not answered successful may or may not
// arrive: it is never expected, and arriving is not an error.
// - cometd-ack: every expected message arrives (lost = 0), never twice on the
//   same page, and in publish order per publisher. A message may come again
//   on a later page after a reload (at least once towards the page: the new
//   page acknowledges batch 0); that duplicate is allowed. The only allowed
//   loss is a session's queue bound (bayeuxd logged a queue overflow, a
//   dropped message or a queue budget for that clientId).
// - cometd and faye (no ack): messages arrive in publish order per publisher
//   and never twice. A loss is allowed when, between the delivery before the
//   gap and the one after it (or the end), something that can lose a reply or
//   a queue happened: a kill -9 or a stop of bayeuxd, a kill of responders, a
//   web server restart, a full disk, or on that client an abort, a reload, or
//   a failed request. A queue bound, as above, allows a loss too. Any other
//   loss is a violation.
// - Every mode: a session is never lost while its client keeps connecting
//   (max-interval is 30 s here, the clients retry within 2 s): each lost
//   session is a violation.
// - bayeuxd: stopping by itself while the disk is full, with a log line, is
//   expected; any other stop (a crash, a stop without a word) is a violation,
//   and so is a fault that could not be carried out (a BX_CTL step failed:
//   a piece did not come back).
// Reordered: a first delivery of n after a delivery of a greater n from the
// same publisher (any page). Duplicated: a second delivery of an n.
import fs from 'node:fs';
import net from 'node:net';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import test from 'node:test';
import assert from 'node:assert/strict';

import { ReloadExtension } from 'cometd';

import {
    BX_URL, BX_SERVER, BX_TMP, opts, sleep, RawClient, newCometD,
    newFaye, ctl, cometdHandshake,
} from '../tests/integration/lib.mjs';
import { check, missing, inject, table } from './chaos-check.mjs';

const env = process.env;
const SEED = Number(env.CHAOS_SEED || 1) >>> 0;
const DURATION_MS = Number(env.CHAOS_DURATION || 60) * 1000;
const DBFS = env.CHAOS_DBFS || '';
const DBFS_SKIP = env.CHAOS_DBFS_SKIP || 'no tmpfs for the database';
const REPORT = env.CHAOS_REPORT || '';
const PIDFILE = env.BX_DISPATCHER_PIDFILE || '';
const DLOGS = [env.BX_DISPATCHER_LOG, `${BX_TMP}/bayeuxd.out`].filter(Boolean);
const SUBS_PER_MODE = 3;
const PUBLISHERS = 3;
const PUBLISH_GAP_MS = 40;
const MODES = ['cometd-ack', 'cometd', 'faye'];
const now = () => performance.now();
let t0 = now();
const since = () => `${((now() - t0) / 1000).toFixed(1)} s`;

// ---------------------------------------------------------------- output

const reportLines = [];
function say(line) {
    process.stdout.write(`chaos: ${line}\n`);
}
function report(line) {
    reportLines.push(line);
    process.stdout.write(`${line}\n`);
}

// ---------------------------------------------------------------- the seed

// mulberry32: small, fast and the same on every machine.
function prng(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6D2B79F5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

const FAULTS = {
    'kill-bayeuxd': 3,
    'kill-responder': 2,
    'kill-responders': 2,
    'restart-webserver': 2,
    abort: 4,
    reload: 4,
    'slow-clients': 2,
    burst: 3,
    'disk-full': 2,
};

// The whole schedule from the seed: [{ at (ms from the start), fault, r }],
// r a list of numbers in [0, 1) that the fault uses for its choices.
function schedule(seed, durationMs) {
    const rnd = prng(seed);
    const names = Object.keys(FAULTS);
    const first = [...names];
    for (let i = first.length - 1; i > 0; i -= 1) {
        const j = Math.floor(rnd() * (i + 1));
        [first[i], first[j]] = [first[j], first[i]];
    }
    const total = names.reduce((s, k) => s + FAULTS[k], 0);
    const out = [];
    let at = 3000;
    while (at < durationMs) {
        let fault = first.shift();
        if (!fault) {
            let x = rnd() * total;
            fault = names.find((k) => (x -= FAULTS[k]) < 0) || names[0];
        }
        out.push({ at, fault, r: [rnd(), rnd(), rnd(), rnd()] });
        at += 1500 + Math.floor(rnd() * 3000);
    }
    return out;
}

// ---------------------------------------------------------------- events

// Intervals [from, to] when something that can lose a reply or a queue
// happened to everyone (kills, restarts, a full disk, a bayeuxd stop).
const globalEvents = [];
function globalEvent(what, from, to = now()) {
    globalEvents.push({ what, from, to });
}

const counts = {};          // fault -> times run
const skips = {};           // fault -> why it was skipped
const failures = [];        // fault steps that did not work (a BX_CTL error)
const retries = [];         // bayeuxd starts that worked only when tried again
function count(fault) {
    counts[fault] = (counts[fault] || 0) + 1;
}

// ---------------------------------------------------------------- publishers

// One stream: a raw client publishing {p, n} on /chaos/<p>. rec[n] =
// { sent, ans, ok }.
class Publisher {
    constructor(name) {
        this.name = name;
        this.channel = `/chaos/${name}`;
        this.client = new RawClient({ name: `publisher ${name}` });
        this.rec = [];
        this.stopped = false;
        this.stopKeepAlive = null;
    }

    async start() {
        await this.client.ready();
        this.stopKeepAlive = this.client.keepAlive();
    }

    // Publishes n = rec.length with data padded to pad characters; a
    // publish that fails is not sent again (the next n goes).
    async publishOne(pad = 0) {
        const n = this.rec.length;
        const r = { sent: now(), ans: 0, ok: false };
        this.rec.push(r);
        const data = pad ? { p: this.name, n, pad: 'x'.repeat(pad) } : { p: this.name, n };
        try {
            const { reply } = await this.client.publish(this.channel, data, {},
                { timeoutMs: 20000 });
            r.ok = !!(reply && reply.successful === true);
            if (reply && String(reply.error || '').startsWith('402')) {
                await this.client.handshake().catch(() => {});
            }
        } catch {
            r.ok = false;
        }
        r.ans = now();
        return r.ok;
    }

    async loop() {
        while (!this.stopped) {
            const ok = await this.publishOne();
            await sleep(ok ? PUBLISH_GAP_MS : 200);
        }
    }

    async close() {
        this.stopped = true;
        if (this.stopKeepAlive) await this.stopKeepAlive();
        await this.client.close();
    }
}

// ---------------------------------------------------------------- subscribers

// Faye's node transport, patched once so that each client's requests in
// flight can be aborted, and a failed request is seen as such.
const require = createRequire(import.meta.url);
const NodeHttp = require('faye/src/transport/node_http');
const fayeRequest = NodeHttp.prototype.request;
NodeHttp.prototype.request = function request(messages) {
    const req = fayeRequest.call(this, messages);
    const hook = this._dispatcher && this._dispatcher.bxChaos;
    if (hook) {
        hook.inflight.add(req);
        req.on('close', () => hook.inflight.delete(req));
        req.on('error', () => hook.failed());
        req.on('response', (res) => {
            if (res.statusCode !== 200) hook.failed();
        });
    }
    return req;
};

// The CometD ReloadExtension keeps its state in window.sessionStorage.
function sessionStorage() {
    const w = globalThis.window;
    if (!w.sessionStorage) {
        const m = new Map();
        w.sessionStorage = {
            getItem: (k) => (m.has(k) ? m.get(k) : null),
            setItem: (k, v) => m.set(k, String(v)),
            removeItem: (k) => m.delete(k),
        };
    }
}

class Subscriber {
    constructor(t, mode, i) {
        this.t = t;
        this.mode = mode;
        this.name = `${mode}#${i}`;
        this.got = [];          // { p, n, page, at }
        this.page = 0;          // pages so far (a reload adds one)
        this.sessions = [];     // { clientId, from (subscribed), to (ended) }
        this.clientId = null;
        this.sessionsLost = 0;
        this.events = [];       // this client's lossy events: { at, what }
        this.client = null;
        this.retired = [];      // earlier pages' CometD objects
        this.notes = [];        // what the report shows about this client
        this.lastError = 'none';
    }

    record(m) {
        const d = m.data;
        if (!d || typeof d !== 'object' || typeof d.n !== 'number') return;
        this.got.push({ p: String(d.p), n: d.n, page: this.page, at: now() });
    }

    // A successful handshake reply (not a reload's replay).
    handshook(clientId) {
        if (this.clientId && clientId !== this.clientId) {
            this.sessionsLost += 1;
            this.endSession();
            this.notes.push(`session ${this.clientId} lost at ${since()} (${this.lastError}), ` +
                `new session ${clientId}`);
        }
        this.clientId = clientId;
    }

    subscribed() {
        const last = this.sessions[this.sessions.length - 1];
        if (last && last.clientId === this.clientId && last.to === Infinity) return;
        this.sessions.push({ clientId: this.clientId, from: now(), to: Infinity });
    }

    endSession() {
        const last = this.sessions[this.sessions.length - 1];
        if (last && last.to === Infinity) last.to = now();
    }

    // Messages of a meta channel, as every client sees them.
    meta(m) {
        if (m.channel === '/meta/handshake' && m.successful === true &&
            !(m.ext && m.ext.reload)) {
            this.handshook(m.clientId);
        } else if (m.channel === '/meta/subscribe' && m.successful === true) {
            this.subscribed();
        } else if (m.channel === '/meta/connect' && m.successful === false) {
            this.events.push({ at: now(), what: 'failed connect' });
            this.lastError = `${since()}: ${m.error || (m.failure && m.failure.reason) || '?'}`;
            if (String(m.error || '').startsWith('402')) this.endSession();
        }
    }

    async start() {
        if (this.mode === 'faye') await this.startFaye();
        else await this.startCometD(null);
    }

    async startFaye() {
        const f = newFaye(this.t);
        f._dispatcher.retry = 1;
        f._dispatcher.bxChaos = {
            inflight: new Set(),
            failed: () => this.events.push({ at: now(), what: 'failed request' }),
        };
        f.addExtension({
            incoming: (m, cb) => {
                if (m.channel.startsWith('/meta/')) this.meta(m);
                else this.record(m);
                f.bxIncoming.length = 0;
                cb(m);
            },
        });
        this.client = f;
        await new Promise((resolve) => f.connect(() => resolve()));
        const sub = f.subscribe('/chaos/**');
        await Promise.resolve(sub);
    }

    // A CometD page: a new CometD object; on a reload the ReloadExtension
    // replays the old page's handshake and the session goes on.
    async startCometD(reload) {
        const c = newCometD(this.t, {
            ack: this.mode === 'cometd-ack',
            config: { maxBackoff: 2000, backoffIncrement: 250 },
        });
        sessionStorage();       // window exists once newCometD adapted it
        // The same browser: its BAYEUX_BROWSER cookie, which the session is
        // bound to, survives the reload.
        if (reload) Object.assign(c.bxCookies, reload.bxCookies);
        c.registerExtension('reload', new ReloadExtension({ name: `chaos.${this.name}` }));
        c.registerExtension('chaos', {
            incoming: (m) => {
                if (m.channel.startsWith('/meta/')) {
                    if (m.channel !== '/meta/connect' || m.successful !== false) this.meta(m);
                } else {
                    this.record(m);
                }
                c.bxIncoming.length = 0;
                return m;
            },
        });
        // Failed connects (also those the client makes up when a request
        // fails) reach the listeners, not always the extensions.
        c.addListener('/meta/connect', (m) => {
            if (m.successful === false) this.meta(m);
        });
        // CometD drops its subscriptions when it handshakes again, and a
        // reloaded page subscribes again (a no-op for the server's session).
        c.addListener('/meta/handshake', (m) => {
            if (m.successful) c.subscribe('/chaos/**', () => {});
        });
        this.client = c;
        await cometdHandshake(c);
    }

    async abort() {
        this.events.push({ at: now(), what: 'abort' });
        if (this.mode === 'faye') {
            for (const req of this.client._dispatcher.bxChaos.inflight) req.destroy();
        } else {
            const tr = this.client.getTransport();
            if (tr) tr.abort();
        }
    }

    async reload() {
        const old = this.client;
        this.events.push({ at: now(), what: 'reload' });
        old.reload();
        // The old page is gone: it must not disconnect the session at the
        // end (newCometD's cleanup would).
        old.isDisconnected = () => true;
        this.retired.push(old);
        this.page += 1;
        await this.startCometD(old);
        this.events.push({ at: now(), what: 'reload' });
    }
}

// ---------------------------------------------------------------- slow clients

const slow = new Set();
const MAX_SLOW = 6;

// A raw session subscribed to /chaos/** whose long-poll response is never
// read (nonreading: more connects are pipelined on the same connection every
// 2 s) or read one byte a second (trickle); gone after lifeMs.
async function slowClient(kind, ack, lifeMs) {
    const c = new RawClient({ name: `slow ${kind}` });
    const entry = { c, sock: null, timer: null };
    slow.add(entry);
    try {
        const h = ack ? await c.ackHandshake() : await c.handshake();
        if (!h.reply || !h.reply.successful) return;
        await c.connect({}, { timeoutMs: 10000 });
        await c.subscribe('/chaos/**');
        const body = JSON.stringify([{ channel: '/meta/connect', clientId: c.clientId,
            connectionType: 'long-polling', id: c.nextId(),
            ...(ack ? { ext: { ack: c.ack === null ? 0 : c.ack } } : {}) }]);
        const u = new URL(BX_URL);
        const reqText = () => `POST ${u.pathname}/connect HTTP/1.1\r\nHost: ${u.host}\r\n` +
            `Content-Type: application/json\r\nCookie: ${c.cookieHeader()}\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
        const sock = net.connect({ host: u.hostname, port: Number(u.port) });
        entry.sock = sock;
        sock.on('error', () => {});
        sock.pause();
        sock.write(reqText());
        entry.timer = setInterval(() => {
            if (kind === 'trickle') sock.read(1);
            else if (!sock.destroyed) sock.write(reqText());
        }, kind === 'trickle' ? 1000 : 2000);
        await sleep(lifeMs);
    } catch {
        // a slow client that could not even start is no finding
    } finally {
        await closeSlow(entry);
    }
}

async function closeSlow(entry) {
    if (!slow.delete(entry)) return;
    if (entry.timer) clearInterval(entry.timer);
    if (entry.sock) entry.sock.destroy();
    await entry.c.close();
}

// ---------------------------------------------------------------- bayeuxd

let ctlChain = Promise.resolve();
// Every BX_CTL action, one at a time (the supervisor and the faults share
// bayeuxd).
function locked(fn) {
    const p = ctlChain.then(fn);
    ctlChain = p.catch(() => {});
    return p;
}

function dispatcherAlive() {
    let pid;
    try {
        pid = Number(fs.readFileSync(PIDFILE, 'utf8').trim());
    } catch {
        return false;
    }
    if (!pid) return false;
    try {
        const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return !/^\d+ \(.*\) Z/.test(st);
    } catch {
        return false;
    }
}

function logSizes() {
    return DLOGS.map((f) => {
        try {
            return fs.statSync(f).size;
        } catch {
            return 0;
        }
    });
}

function logSince(marks) {
    return DLOGS.map((f, i) => {
        try {
            const b = fs.readFileSync(f);
            return b.subarray(Math.min(marks[i] || 0, b.length)).toString('utf8');
        } catch {
            return '';
        }
    }).join('');
}

const state = {
    diskFull: false,        // the fill file is there
    dispatcherDown: false,  // a fault stopped bayeuxd on purpose
    stops: [],              // { at, diskFull, log }
    restarts: 0,
    stopping: false,
    lastAlive: now(),
    logMarks: logSizes(),
};

async function startDispatcher() {
    for (let attempt = 1; ; attempt += 1) {
        try {
            await ctl('start-dispatcher');
            state.logMarks = logSizes();
            return;
        } catch (e) {
            if (attempt >= 10) throw e;
            retries.push(`start-dispatcher (attempt ${attempt}): ${e.message}`);
            await sleep(1000 * attempt);
        }
    }
}

// Every 300 ms: a bayeuxd that stopped by itself is noted, then started
// again once the disk has space.
async function supervise() {
    while (!state.stopping) {
        await sleep(300);
        if (state.dispatcherDown) continue;
        if (dispatcherAlive()) {
            state.lastAlive = now();
            continue;
        }
        await locked(async () => {
            if (state.dispatcherDown || dispatcherAlive()) return;
            const from = state.lastAlive;
            await sleep(200);       // its last words
            const log = logSince(state.logMarks).trim();
            const stop = { at: now(), diskFull: state.diskFull, log };
            state.stops.push(stop);
            say(`bayeuxd stopped by itself${state.diskFull ? ' (disk full)' : ''}: ` +
                `${log ? log.split('\n').slice(-2).join(' | ') : 'no log line'}`);
            for (let i = 0; state.diskFull && i < 600; i += 1) await sleep(100);
            globalEvent('bayeuxd stopped', from);
            await startDispatcher();
            state.restarts += 1;
        }).catch((e) => failures.push(`the supervisor's restart of bayeuxd: ${e.message}`));
    }
}

// ---------------------------------------------------------------- faults

const ctx = { subs: [], big: null, pubs: [] };

async function withGlobal(what, fn) {
    const from = now();
    try {
        await fn();
    } finally {
        globalEvent(what, from);
    }
}

function pick(arr, r) {
    return arr[Math.floor(r * arr.length) % arr.length];
}

const run = {
    'kill-bayeuxd': (r) => withGlobal('kill -9 bayeuxd', () => locked(async () => {
        state.dispatcherDown = true;
        try {
            await ctl('kill-dispatcher', 'KILL');
            await sleep(Math.floor(r[0] * 1000));
            await startDispatcher();
        } finally {
            state.dispatcherDown = false;
        }
    })),
    'kill-responder': () => withGlobal('kill -9 one responder',
        () => locked(() => ctl('kill-responder', 'KILL', 'one'))),
    'kill-responders': () => withGlobal('kill -9 all responders', () => locked(async () => {
        if (BX_SERVER === 'lighttpd') await ctl('kill-responder', 'KILL', 'workers');
        else await ctl('restart-responder', 'KILL');
    })),
    'restart-webserver': () => withGlobal(`restart ${BX_SERVER}`,
        () => locked(() => ctl('restart-webserver'))),
    abort: async (r) => {
        const s = pick(ctx.subs, r[0]);
        say(`abort ${s.name} (${s.clientId})`);
        await s.abort();
    },
    reload: async (r) => {
        const s = pick(ctx.subs.filter((x) => x.mode !== 'faye'), r[0]);
        say(`reload ${s.name} (${s.clientId})`);
        await s.reload();
    },
    'slow-clients': async (r) => {
        const k = 1 + Math.floor(r[0] * 3);
        for (let i = 0; i < k && slow.size < MAX_SLOW; i += 1) {
            const kind = (r[1] + i / k) % 1 < 0.5 ? 'nonreading' : 'trickle';
            slowClient(kind, r[2] < 0.5, 5000 + Math.floor(r[3] * 15000));
        }
    },
    burst: async (r) => {
        const k = 3 + Math.floor(r[0] * 6);
        const pad = 150000 + Math.floor(r[1] * 100000);
        say(`burst of ${k} messages of ${pad} bytes`);
        for (let i = 0; i < k; i += 1) await ctx.big.publishOne(pad);
    },
    'disk-full': async (r) => {
        if (!DBFS) {
            skips['disk-full'] = DBFS_SKIP;
            return false;
        }
        const file = `${DBFS}/fill`;
        const from = now();
        const chunk = Buffer.alloc(1 << 20, 0x55);
        const fd = fs.openSync(file, 'w');
        let bytes = 0;
        try {
            // Bounded: the tmpfs is far smaller than 4 GB.
            for (let i = 0; i < 4096; i += 1) {
                const w = fs.writeSync(fd, chunk);
                bytes += w;
                if (w < chunk.length) break;
            }
        } catch (e) {
            if (e.code !== 'ENOSPC') throw e;
        } finally {
            fs.closeSync(fd);
        }
        state.diskFull = true;
        say(`disk full (${(bytes / 1048576).toFixed(1)} MB written)`);
        // Traffic goes on: large messages need new pages of the database.
        const until = now() + 2000 + Math.floor(r[0] * 4000);
        for (let i = 0; i < 24 && now() < until; i += 1) await ctx.big.publishOne(200000);
        if (until > now()) await sleep(until - now());
        fs.unlinkSync(file);
        state.diskFull = false;
        globalEvent('disk full', from);
        return true;
    },
};

// ---------------------------------------------------------------- the run

test(`chaos: seed ${SEED}, ${DURATION_MS / 1000} s of faults behind ${BX_SERVER}`,
    opts(DURATION_MS + 400000), async (t) => {
        const plan = schedule(SEED, DURATION_MS);
        say(`seed ${SEED}, ${DURATION_MS / 1000} s, ${plan.length} faults behind ${BX_SERVER}` +
            (DBFS ? `, database on a tmpfs (${DBFS})` : `; disk-full skipped: ${DBFS_SKIP}`));
        t.after(async () => {
            state.stopping = true;
            for (const e of [...slow]) await closeSlow(e);
        });
        // Every bayeuxd from now on is one BX_CTL started: the supervisor
        // sees them all the same way.
        await locked(async () => {
            state.dispatcherDown = true;
            await ctl('kill-dispatcher', 'TERM');
            await startDispatcher();
            state.dispatcherDown = false;
        });
        const supervisor = supervise();

        for (let i = 0; i < PUBLISHERS; i += 1) ctx.pubs.push(new Publisher(`p${i}`));
        ctx.big = new Publisher('big');
        for (const p of [...ctx.pubs, ctx.big]) {
            await p.start();
            t.after(() => p.close());
        }
        for (const mode of MODES) {
            for (let i = 0; i < SUBS_PER_MODE; i += 1) {
                const s = new Subscriber(t, mode, i);
                await s.start();
                ctx.subs.push(s);
            }
        }
        // Every subscription confirmed before the first publish.
        const subStart = Date.now();
        while (ctx.subs.some((s) => s.sessions.length === 0) && Date.now() - subStart < 20000) {
            await sleep(50);
        }
        assert.ok(ctx.subs.every((s) => s.sessions.length > 0), 'every subscriber subscribed');
        const loops = ctx.pubs.map((p) => p.loop());

        const start = now();
        t0 = start;
        for (const step of plan) {
            const wait = start + step.at - now();
            if (wait > 0) await sleep(wait);
            if (now() - start >= DURATION_MS) break;
            say(`${((now() - start) / 1000).toFixed(1)} s: ${step.fault}`);
            try {
                const done = await run[step.fault](step.r);
                if (done !== false) count(step.fault);
            } catch (e) {
                failures.push(`${step.fault}: ${e.message}`);
                say(`${step.fault} failed: ${e.message}`);
            }
        }
        const faultsEnd = now();
        say(`faults done after ${((faultsEnd - start) / 1000).toFixed(1)} s; settling`);

        // Settle: bayeuxd back (the supervisor), the publishers stopped,
        // then until every subscriber has what it is owed, or no progress
        // for 15 s (60 s at most).
        for (let i = 0; i < 300 && !dispatcherAlive(); i += 1) await sleep(100);
        for (const p of ctx.pubs) p.stopped = true;
        await Promise.all(loops);
        for (const e of [...slow]) await closeSlow(e);
        let last = -1;
        let lastChange = now();
        for (const deadline = now() + 60000; now() < deadline;) {
            const m = ctx.subs.reduce((a, s) => a + missing(s, [...ctx.pubs, ctx.big]), 0);
            if (m === 0) break;
            if (m !== last) {
                last = m;
                lastChange = now();
            } else if (now() - lastChange > 15000) {
                break;
            }
            await sleep(250);
        }
        await sleep(1000);              // late duplicates
        const end = now();
        state.stopping = true;
        await supervisor;

        const dlog = DLOGS.map((f) => {
            try {
                return fs.readFileSync(f, 'utf8');
            } catch {
                return '';
            }
        }).join('\n');
        const pubs = [...ctx.pubs, ctx.big];
        if (env.CHAOS_INJECT) say(inject(ctx.subs[0], pubs[0]));
        const rows = MODES.map((mode) => {
            const sum = { mode, received: 0, expected: 0, lost: 0, 'allowed-lost': 0,
                duplicated: 0, 'allowed-dup': 0, reordered: 0, 'sessions-lost': 0,
                violations: 0, notes: [], causes: {}, runs: [] };
            for (const s of ctx.subs.filter((x) => x.mode === mode)) {
                const c = check(s, pubs, { end, dlog, events: globalEvents, t0 });
                sum.received += c.received;
                sum.expected += c.expected;
                sum.lost += c.lost;
                sum['allowed-lost'] += c.allowedLost;
                sum.duplicated += c.duplicated;
                sum['allowed-dup'] += c.allowedDup;
                sum.reordered += c.reordered;
                sum['sessions-lost'] += c.sessionsLost;
                sum.violations += c.violations;
                for (const x of c.runs) sum.runs.push({ ...x, s: s.name });
                for (const [k, v] of Object.entries(c.causes)) {
                    sum.causes[k] = (sum.causes[k] || 0) + v;
                }
                for (const note of c.notes.slice(0, 10)) sum.notes.push(`${s.name}: ${note}`);
            }
            return sum;
        });

        const published = pubs.reduce((a, p) => a + p.rec.length, 0);
        const okCount = pubs.reduce((a, p) => a + p.rec.filter((x) => x.ok).length, 0);
        const silent = state.stops.filter((x) => !x.log);
        const unexpectedStops = state.stops.filter((x) => !x.diskFull || !x.log);
        report(`chaos report: seed ${SEED}, ${((faultsEnd - start) / 1000).toFixed(0)} s ` +
            `of faults behind ${BX_SERVER}`);
        report('faults: ' + Object.keys(FAULTS).map((k) => `${k} ${counts[k] || 0}`)
            .join(', '));
        for (const [k, why] of Object.entries(skips)) report(`skipped ${k}: ${why}`);
        report(`publishes: ${published} sent, ${okCount} answered successful ` +
            `(${published - okCount} failed or unanswered: never expected)`);
        report(`bayeuxd: ${state.stops.length} stops by itself (` +
            `${state.stops.filter((x) => x.diskFull).length} with the disk full, ` +
            `${silent.length} without a log line), ${state.restarts} restarts by the supervisor`);
        for (const f of failures.slice(0, 10)) report(`fault step failed: ${f}`);
        for (const f of retries.slice(0, 10)) report(`tried again: ${f}`);
        for (const line of table(rows)) report(line);
        for (const row of rows) {
            if (row['allowed-lost'] > 0) {
                report(`  ${row.mode}: allowed losses, by what happened in the gap: ` +
                    Object.entries(row.causes).map(([k, v]) => `${k} ${v}`).join(', '));
                const runs = [...row.runs].sort((a, b) => (b.to - b.from) - (a.to - a.from));
                for (const x of runs.slice(0, 5)) {
                    report(`    ${x.s}: ${x.p} ${x.from}-${x.to} (published at ${x.at} s): ` +
                        x.cause);
                }
            }
            for (const note of row.notes.slice(0, 15)) report(`  ${note}`);
        }
        for (const st of unexpectedStops) {
            report(`  bayeuxd stop${st.diskFull ? ' (disk full)' : ''} without cause: ` +
                `${st.log ? st.log.split('\n').slice(-3).join(' | ') : 'no log line'}`);
        }
        const violations = rows.reduce((a, x) => a + x.violations, 0) +
            unexpectedStops.length + failures.length;
        const verdict = violations === 0
            ? `chaos: seed ${SEED}: PASS, nothing lost, duplicated or reordered beyond ` +
              'what the guarantee allows'
            : `chaos: seed ${SEED}: FAIL, ${violations} violations (replay: bench/chaos ` +
              `--seed ${SEED} --duration ${DURATION_MS / 1000} --server ${BX_SERVER})`;
        report(verdict);
        if (REPORT) fs.writeFileSync(REPORT, reportLines.join('\n') + '\n');
        assert.ok(okCount > 0, 'some publishes succeeded');
        assert.equal(violations, 0, verdict);
    });

// Shared helpers for the integration tests: a raw Bayeux client over node:http,
// factories for the stock CometD and Faye clients, and small timing utilities.
//
// The harness exports:
//   BX_URL              the Bayeux endpoint, e.g. http://127.0.0.1:PORT/cometd
//   BX_ORIGIN           http://127.0.0.1:PORT (the demo page is served at /)
//   BX_SERVER           nginx | lighttpd | apache (only used in messages)
//   BX_TIMEOUT_MS       the dispatcher's connect hold timeout (advice.timeout)
//   BX_MAX_INTERVAL_MS  the session max-interval (expiry after interval + this)
//   BX_CTL              the script that kills and restarts the pieces (below)
//   BX_BAYEUXD, BX_DATABASE, BX_TMP
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { after } from 'node:test';
import assert from 'node:assert/strict';

import { CometD, AckExtension, TimeSyncExtension } from 'cometd';
import { adapt } from 'cometd-nodejs-client';
import faye from 'faye';

export const BX_URL = process.env.BX_URL || '';
export const BX_ORIGIN = process.env.BX_ORIGIN || '';
export const BX_SERVER = process.env.BX_SERVER || 'unknown';
export const BX_TMP = process.env.BX_TMP || '';
export const BX_CTL = process.env.BX_CTL || '';
export const BX_BAYEUXD = process.env.BX_BAYEUXD || '';
export const BX_DATABASE = process.env.BX_DATABASE || '';
export const TIMEOUT_MS = Number(process.env.BX_TIMEOUT_MS || 2000);
export const MAX_INTERVAL_MS = Number(process.env.BX_MAX_INTERVAL_MS || 3000);

// Options for every test(): its own timeout, and a skip when run outside the
// harness (no server to talk to).
export function opts(timeout = 20000) {
    return { timeout, skip: BX_URL ? false : 'BX_URL not set (run through harness.sh)' };
}

// opts() for a test that runs behind nginx only (the long persistence
// tests: the other servers add nothing to what they prove but time).
export function nginxOpts(timeout = 20000) {
    const o = opts(timeout);
    if (!o.skip && BX_SERVER !== 'nginx') {
        o.skip = `runs behind nginx only (this is ${BX_SERVER})`;
    }
    return o;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A short random tag so that channel names of one test never collide with
// another's (every test also cleans up, this is belt and braces).
export function uniq(prefix = 't') {
    return prefix + Math.random().toString(36).slice(2, 10);
}

// Rejects after ms with a message naming what we were waiting for.
export function withTimeout(promise, ms, what) {
    let timer;
    const t = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)),
            ms);
    });
    return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Resolves when pred() is true, polling every 20 ms; rejects after ms.
export async function until(pred, ms, what) {
    const deadline = Date.now() + ms;
    while (!pred()) {
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        }
        await sleep(20);
    }
}

// Watchdog: if a client library leaves a timer or socket behind, the test
// process would never exit and the whole suite would hang. Everything is
// cleaned up by the tests; this unref'd timer fires only if something was not.
after(() => {
    setTimeout(() => {
        process.stderr.write('watchdog: handles left open after the last test, exiting\n');
        process.exit(process.exitCode ?? 0);
    }, 5000).unref();
});

// ------------------------------------------------------------------ restarts

// Runs a program; resolves with { code, stdout, stderr } whatever the exit
// status (rejects only when it cannot be started).
export function run(file, args = [], { timeoutMs = 60000 } = {}) {
    return new Promise((resolve, reject) => {
        execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
            if (err && typeof err.code !== 'number') {
                reject(err);
                return;
            }
            resolve({ code: err ? err.code : 0, stdout, stderr });
        });
    });
}

// Runs "$BX_CTL ACTION ARGS..." (see harness.sh); resolves with its output,
// rejects with its error message.
export async function ctl(action, ...args) {
    if (!BX_CTL) throw new Error('BX_CTL not set (run through harness.sh)');
    const r = await run(BX_CTL, [action, ...args]);
    if (r.code !== 0) {
        throw new Error(`${action} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
    }
    return r.stdout.trim();
}

const sig = (s) => String(s).replace(/^SIG/, '');

// The extra flags the running bayeuxd was started with ([] = the harness's).
let dispatcherFlags = [];

// Kills bayeuxd (default: kill -9, a crash) and waits until it is gone.
export async function killDispatcher(signal = 'SIGKILL') {
    await ctl('kill-dispatcher', sig(signal));
}

// Starts bayeuxd again with the harness's command line plus flags (a later
// flag wins), and waits until it is bound. Resolves with its pid.
export async function startDispatcher(flags = []) {
    const pid = Number(await ctl('start-dispatcher', ...flags));
    dispatcherFlags = flags;
    return pid;
}

export async function restartDispatcher({ signal = 'SIGKILL', flags = dispatcherFlags } = {}) {
    await killDispatcher(signal);
    return startDispatcher(flags);
}

// Brings back bayeuxd as the harness started it, unless it runs so: starts
// it if a test left it dead, restarts it (SIGTERM) if with other flags.
export async function restoreDispatcher() {
    let running = true;
    try {
        await ctl('dispatcher-pid');
    } catch {
        running = false;
    }
    if (running && dispatcherFlags.length === 0) return;
    if (running) await killDispatcher('SIGTERM');
    await startDispatcher([]);
}

// Runs the rest of test t against a bayeuxd started (cleanly: SIGTERM) with
// these extra flags; the test's after hook brings back the harness's.
export async function useDispatcherFlags(t, flags) {
    t.after(restoreDispatcher);
    await restartDispatcher({ signal: 'SIGTERM', flags });
}

// kill -9 the responder processes that serve requests: bayeux-fcgi's
// workers (its supervisor starts new ones; resolves once they are there),
// or the processes lighttpd spawned.
export async function killResponderWorker(signal = 'SIGKILL') {
    await ctl('kill-responder', sig(signal), 'workers');
}

// nginx and Apache: kill -9 bayeux-fcgi and its workers at once, then start
// it again the same way (same socket).
export async function restartResponder(signal = 'SIGKILL') {
    await ctl('restart-responder', sig(signal));
}

// Stops the web server (default SIGTERM; nginx then closes every
// connection at once) and starts it again on the same port.
export async function restartWebServer(signal = 'SIGTERM') {
    await ctl('restart-webserver', sig(signal));
}

// "bayeuxd --check-db" on the database (default: the harness's). Resolves
// with { code, ok, problems: [lines], schema, sessions, subscriptions,
// messages, queued, channels, history, output }; the counts are those of the
// "database ok" summary line (undefined when there is none). A database the
// running bayeuxd holds is checked through a copy it writes.
let checkCopies = 0;
export async function checkDb(database = BX_DATABASE) {
    let r = await run(BX_BAYEUXD, ['--check-db', `--database=${database}`]);
    if (r.code === 3 && process.env.BX_BAYEUXCTL && process.env.BX_APP) {
        // In use by the running bayeuxd, which keeps it to itself: check a
        // copy it writes as of its last commit (docs/persistence.md).
        checkCopies += 1;
        const copy = `${BX_TMP}/check-copy-${process.pid}-${checkCopies}.db`;
        const b = await run(process.env.BX_BAYEUXCTL, ['--app', process.env.BX_APP,
            '--config', '/dev/null', '--quiet', 'backup', copy]);
        if (b.code !== 0) {
            return { code: b.code, ok: false, problems: [b.stdout + b.stderr],
                output: `bayeuxctl backup: ${b.stdout}${b.stderr}` };
        }
        r = await run(BX_BAYEUXD, ['--check-db', `--database=${copy}`]);
        await fs.promises.rm(copy, { force: true });
    }
    const output = (r.stdout + r.stderr).trim();
    const lines = output.split('\n').filter(Boolean);
    const res = { code: r.code, ok: false, problems: [], output };
    for (const line of lines) {
        const m = /^bayeuxd: database ok: schema (\d+), (.*)$/.exec(line);
        if (m) {
            res.ok = r.code === 0;
            res.schema = Number(m[1]);
            for (const part of m[2].split(',')) {
                const pm = /^\s*(\d+) (\w+)\s*$/.exec(part);
                if (pm) res[pm[2]] = Number(pm[1]);
            }
        } else if (!/^bayeuxd: database has \d+ problem/.test(line)) {
            res.problems.push(line);
        }
    }
    return res;
}

// Bytes on disk of a SQLite database: { db, wal, total } (the file, its
// write-ahead log, both).
export function dbSize(database = BX_DATABASE) {
    const size = (f) => {
        try {
            return fs.statSync(f).size;
        } catch {
            return 0;       // no such file (yet)
        }
    };
    const db = size(database);
    const wal = size(database + '-wal');
    return { db, wal, total: db + wal };
}

// ------------------------------------------------------------------ raw HTTP

// One HTTP request on its own connection (agent: false: no keep-alive, so a
// held long poll never blocks another request and destroying one request's
// socket affects nothing else). Resolves with
//   { status, headers, raw (Buffer), body (string), elapsed (ms) }.
// The returned promise has .req (the ClientRequest) so a test can abort it.
export function httpRequest(url, { method = 'GET', headers = {}, body = null,
    timeoutMs = 30000 } = {}) {
    let req;
    const p = new Promise((resolve, reject) => {
        const u = new URL(url);
        const hdrs = { ...headers };
        let payload = null;
        if (body !== null && body !== undefined) {
            payload = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
            hdrs['Content-Length'] = payload.length;
        }
        const start = performance.now();
        req = http.request({
            hostname: u.hostname, port: u.port, path: u.pathname + u.search,
            method, headers: hdrs, agent: false,
        }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const raw = Buffer.concat(chunks);
                resolve({ status: res.statusCode, headers: res.headers, raw,
                    body: raw.toString('utf8'), elapsed: performance.now() - start });
            });
            res.on('error', reject);
        });
        req.setTimeout(timeoutMs, () => {
            req.destroy(new Error(`${method} ${url}: no response after ${timeoutMs} ms`));
        });
        req.on('error', reject);
        if (payload) req.write(payload);
        req.end();
    });
    p.req = req;
    return p;
}

// Parses a JSONP body "/**/cb([...]);" (the comment and the semicolon are
// what we decided to send; the callback name must be the one requested).
export function parseJsonp(body, cb) {
    const m = /^\s*\/\*\*\/\s*([A-Za-z0-9_$.]+)\(([\s\S]*)\);?\s*$/.exec(body);
    if (!m) throw new Error(`not a JSONP body: ${body.slice(0, 200)}`);
    assert.equal(m[1], cb, 'JSONP callback name');
    return JSON.parse(m[2]);
}

// A Bayeux client that speaks raw HTTP, one object per browser: it keeps its
// own cookie jar (BAYEUX_BROWSER), its clientId, and every delivery (a message
// without "successful") that came back in any of its responses, connect or not.
export class RawClient {
    constructor({ url = BX_URL, transport = 'long-polling', encoding = 'json',
        name = 'raw' } = {}) {
        this.url = url;
        this.transport = transport;  // long-polling | callback-polling
        this.encoding = encoding;    // json | form (long-polling only)
        this.name = name;
        this.cookies = new Map();
        this.clientId = null;
        this.deliveries = [];        // { msg, at, via } in arrival order
        this.responses = [];         // every response, for header checks
        this.inflight = new Set();   // requests to destroy on close()
        this.disconnected = false;
        this.nextIdValue = 0;
        this.jsonpCount = 0;
        this.ack = null;             // ack sessions: the last batch received
        this.closing = false;        // close() called: keepAlive() stops
        this.handshakes = 0;         // successful handshakes
    }

    nextId() {
        this.nextIdValue += 1;
        return String(this.nextIdValue);
    }

    cookieHeader() {
        return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    }

    storeCookies(setCookie) {
        for (const line of [].concat(setCookie || [])) {
            const nv = line.split(';')[0].trim();
            const eq = nv.indexOf('=');
            if (eq > 0) this.cookies.set(nv.slice(0, eq), nv.slice(eq + 1));
        }
    }

    // Sends messages (any JSON value; a string is sent as it is, so tests can
    // send malformed text) and returns the response with .messages (the
    // parsed reply, or null when the status is not 200 or it does not parse).
    //   cookie: true (the jar), false (none), or a literal Cookie header value
    //   path:   appended to the URL (e.g. "/handshake")
    //   transport / encoding: override the client's
    async send(messages, { cookie = true, path = '', headers = {}, timeoutMs = 30000,
        transport = this.transport, encoding = this.encoding, onRequest } = {}) {
        const text = typeof messages === 'string' ? messages : JSON.stringify(messages);
        const hdrs = { ...headers };
        const c = cookie === true ? this.cookieHeader() : cookie || '';
        if (c) hdrs.Cookie = c;
        let p;
        let cb = null;
        if (transport === 'callback-polling') {
            this.jsonpCount += 1;
            cb = `_cometd_jsonp_${this.jsonpCount}`;
            const q = `?jsonp=${cb}&message=${encodeURIComponent(text)}`;
            p = httpRequest(this.url + path + q, { method: 'GET', headers: hdrs, timeoutMs });
        } else if (encoding === 'form') {
            hdrs['Content-Type'] = 'application/x-www-form-urlencoded';
            p = httpRequest(this.url + path, { method: 'POST', headers: hdrs,
                body: 'message=' + encodeURIComponent(text), timeoutMs });
        } else {
            hdrs['Content-Type'] = 'application/json';
            p = httpRequest(this.url + path, { method: 'POST', headers: hdrs, body: text,
                timeoutMs });
        }
        this.inflight.add(p.req);
        if (onRequest) onRequest(p.req);
        let res;
        try {
            res = await p;
        } finally {
            this.inflight.delete(p.req);
        }
        this.storeCookies(res.headers['set-cookie']);
        res.messages = null;
        if (res.status === 200) {
            try {
                res.messages = cb ? parseJsonp(res.body, cb) : JSON.parse(res.body);
            } catch (e) {
                res.parseError = e;
            }
        }
        this.responses.push(res);
        if (Array.isArray(res.messages)) {
            const via = (res.messages.find((m) => m && m.successful !== undefined) || {}).channel;
            for (const m of res.messages) {
                if (m && typeof m === 'object' && m.successful === undefined && 'data' in m) {
                    this.deliveries.push({ msg: m, at: performance.now(), via });
                }
            }
        }
        return res;
    }

    // Sends one message (id added unless given; clientId added when known and
    // not given: pass clientId: undefined explicitly to omit it) and returns
    // { res, reply } where reply is the response message with the same id.
    async request(msg, sendOpts = {}) {
        const m = { ...msg };
        if (!('id' in m)) m.id = this.nextId();
        if (!('clientId' in m) && this.clientId) m.clientId = this.clientId;
        for (const k of Object.keys(m)) if (m[k] === undefined) delete m[k];
        const res = await this.send([m], sendOpts);
        const reply = findReply(res, m);
        return { res, reply };
    }

    async handshake(extra = {}, sendOpts = {}) {
        const r = await this.request({
            channel: '/meta/handshake', version: '1.0', minimumVersion: '1.0',
            supportedConnectionTypes: ['long-polling', 'callback-polling'],
            clientId: undefined, ...extra,
        }, sendOpts);
        if (r.reply && r.reply.successful) {
            this.clientId = r.reply.clientId;
            this.disconnected = false;
            this.handshakes += 1;
            // Ack extension (reference 5.1): asked with ext.ack true and
            // granted with ext.ack true; batches count from 0 again.
            const asked = extra.ext && extra.ext.ack === true;
            this.ack = asked && r.reply.ext && r.reply.ext.ack === true ? 0 : null;
        }
        return r;
    }

    // Handshake asking for the ack extension.
    ackHandshake(extra = {}, sendOpts = {}) {
        return this.handshake({ ...extra, ext: { ...(extra.ext || {}), ack: true } }, sendOpts);
    }

    // An ack session's connect carries ext.ack = the last batch received
    // unless extra.ext.ack is given; a successful reply's ext.ack becomes the
    // last batch received.
    async connect(extra = {}, sendOpts = {}) {
        const msg = { channel: '/meta/connect', connectionType: this.transport, ...extra };
        if (this.ack !== null && !(msg.ext && 'ack' in msg.ext)) {
            msg.ext = { ...(msg.ext || {}), ack: this.ack };
        }
        const r = await this.request(msg, sendOpts);
        if (this.ack !== null && r.reply && r.reply.successful && r.reply.ext &&
            typeof r.reply.ext.ack === 'number') {
            this.ack = r.reply.ext.ack;
        }
        return r;
    }

    // Keeps the session alive with a connect loop in the background (for a
    // client that only publishes); a 402 makes it handshake again, a failed
    // request is retried after 200 ms. Returns an async stop().
    keepAlive() {
        let stopped = false;
        let current = null;
        const loop = (async () => {
            while (!stopped && !this.closing) {
                try {
                    const c = await this.connect({}, { timeoutMs: TIMEOUT_MS + 5000,
                        onRequest: (req) => { current = req; } });
                    if (stopped || this.closing) break;
                    if (c.reply && c.reply.successful === false &&
                        String(c.reply.error || '').startsWith('402')) {
                        await this.handshake(this.ack !== null ? { ext: { ack: true } } : {});
                    } else if (!c.reply || !c.reply.successful) {
                        await sleep(200);
                    }
                } catch {
                    if (!stopped) await sleep(200);
                }
            }
        })();
        return async () => {
            stopped = true;
            if (current) current.destroy();
            await loop;
        };
    }

    subscribe(subscription, extra = {}, sendOpts = {}) {
        return this.request({ channel: '/meta/subscribe', subscription, ...extra }, sendOpts);
    }

    unsubscribe(subscription, extra = {}, sendOpts = {}) {
        return this.request({ channel: '/meta/unsubscribe', subscription, ...extra }, sendOpts);
    }

    publish(channel, data, extra = {}, sendOpts = {}) {
        return this.request({ channel, data, ...extra }, sendOpts);
    }

    async disconnect(sendOpts = {}) {
        const r = await this.request({ channel: '/meta/disconnect' }, sendOpts);
        this.disconnected = true;
        return r;
    }

    // Handshake and the first connect (which must return at once), asserting
    // both succeed: the state every other test starts from.
    async ready() {
        const h = await this.handshake();
        assert.equal(h.res.status, 200, `${this.name}: handshake HTTP status`);
        assert.ok(h.reply && h.reply.successful, `${this.name}: handshake failed: ${h.res.body}`);
        const c = await this.connect({}, { timeoutMs: TIMEOUT_MS + 5000 });
        assert.equal(c.res.status, 200, `${this.name}: first connect HTTP status`);
        assert.ok(c.reply && c.reply.successful,
            `${this.name}: first connect failed: ${c.res.body}`);
        return this;
    }

    // Subscribes and asserts success.
    async mustSubscribe(subscription) {
        const r = await this.subscribe(subscription);
        assert.equal(r.res.status, 200);
        assert.ok(r.reply && r.reply.successful === true,
            `subscribe ${JSON.stringify(subscription)} failed: ${r.res.body}`);
        return r;
    }

    async mustPublish(channel, data, extra = {}) {
        const r = await this.publish(channel, data, extra);
        assert.equal(r.res.status, 200);
        assert.ok(r.reply && r.reply.successful === true,
            `publish to ${channel} failed: ${r.res.body}`);
        return r;
    }

    // Deliveries collected so far (the messages only), optionally for a channel.
    received(channel) {
        return this.deliveries.map((d) => d.msg).filter((m) => !channel || m.channel === channel);
    }

    // Issues /meta/connect requests (each held by the server up to its
    // timeout, released early by a delivery) until pred(received()) is true.
    // Only for a client that has no connect outstanding.
    async pollUntil(pred, ms = TIMEOUT_MS * 3 + 2000, what = 'deliveries') {
        const deadline = Date.now() + ms;
        while (!pred(this.received())) {
            if (Date.now() > deadline) {
                throw new Error(`${this.name}: timed out after ${ms} ms waiting for ${what}; ` +
                    `got ${JSON.stringify(this.received())}`);
            }
            const c = await this.connect({}, { timeoutMs: TIMEOUT_MS + 5000 });
            assert.equal(c.res.status, 200, `${this.name}: connect HTTP status ${c.res.status}`);
            assert.ok(c.reply && c.reply.successful,
                `${this.name}: connect failed: ${c.res.body}`);
        }
        return this.received();
    }

    // Destroys what is still in flight and disconnects the session (errors
    // ignored: the test may have killed the session on purpose).
    async close() {
        this.closing = true;
        for (const req of this.inflight) req.destroy();
        this.inflight.clear();
        if (this.clientId && !this.disconnected) {
            try {
                await this.disconnect({ timeoutMs: 5000 });
            } catch {
                // the server may already have dropped it; nothing to clean
            }
        }
    }
}

// The reply to msg in a response: same id when msg has a valid one, else the
// first message on msg's channel that carries "successful".
export function findReply(res, msg) {
    if (!Array.isArray(res.messages)) return null;
    const withSucc = res.messages.filter((m) => m && m.successful !== undefined);
    if (typeof msg.id === 'string' && /^[A-Za-z0-9]+$/.test(msg.id)) {
        const byId = withSucc.find((m) => m.id === msg.id);
        if (byId) return byId;
    }
    return withSucc.find((m) => m.channel === msg.channel) || withSucc[0] || null;
}

// A RawClient that the test's after hook closes.
export function rawClient(t, options = {}) {
    const c = new RawClient(options);
    t.after(() => c.close());
    return c;
}

// Asserts the full advice object: reconnect, interval and timeout all present.
export function assertFullAdvice(advice, reconnect, what = 'advice') {
    assert.ok(advice && typeof advice === 'object', `${what}: missing`);
    assert.equal(advice.reconnect, reconnect, `${what}.reconnect`);
    assert.equal(advice.interval, 0, `${what}.interval`);
    assert.equal(typeof advice.timeout, 'number', `${what}.timeout must be a number`);
}

// Asserts the server still serves: a fresh session can handshake, connect,
// subscribe and publish to itself. Returns that (ready) client.
export async function assertServing(t) {
    const c = rawClient(t, { name: 'fresh' });
    await c.ready();
    const ch = '/' + uniq('alive');
    await c.mustSubscribe(ch);
    await c.mustPublish(ch, 'ping');
    await c.pollUntil((r) => r.some((m) => m.channel === ch), TIMEOUT_MS * 2 + 2000,
        'own message after bad input');
    return c;
}

// An observer subscribed to /** before something bad happens; check() later
// proves it received nothing but a sentinel published after the bad input.
export async function observer(t) {
    const o = rawClient(t, { name: 'observer' });
    await o.ready();
    await o.mustSubscribe('/**');
    return {
        client: o,
        async checkNothing(publisher) {
            const sentinel = '/' + uniq('sentinel');
            await publisher.mustPublish(sentinel, 'sentinel');
            const got = await o.pollUntil((r) => r.some((m) => m.channel === sentinel),
                TIMEOUT_MS * 2 + 2000, 'the sentinel');
            // assertServing()'s own traffic is on /alive* channels.
            const others = got.filter((m) => m.channel !== sentinel &&
                !m.channel.startsWith('/alive'));
            assert.deepEqual(others, [], 'observer saw something besides the sentinel');
        },
    };
}

// ------------------------------------------------------------------ CometD

// cometd-nodejs-client keeps one cookie jar per host name for all CometD
// objects of the process. Each of our CometD objects stands for a separate
// browser, so we give each its own jar: the transport's "context" is copied
// into every XHR and handed to retrieveCookies(); we remember the jar on the
// request's URL object, which storeCookie() receives for the same request.
let adapted = false;
function adaptOnce() {
    if (adapted) return;
    adapted = true;
    adapt({
        cookies: {
            retrieveCookies(context, uri, callback) {
                const jar = (context && context.cookieStore) || {};
                uri.bxJar = jar;
                callback(null, Object.entries(jar).map(([k, v]) => `${k}=${v}`));
            },
            storeCookie(uri, header, callback) {
                const jar = uri.bxJar;
                const nv = String(header).split(';')[0].trim();
                const eq = nv.indexOf('=');
                if (jar && eq > 0) jar[nv.slice(0, eq)] = nv.slice(eq + 1);
                callback();
            },
        },
    });
}

// A CometD client on long-polling only (no WebSocket: we do not serve it;
// callback-polling needs a DOM). Disconnected by the test's after hook.
//   ack: register CometD's AckExtension; timesync: its TimeSyncExtension
//   (kept as cometd.bxTimeSync); config: more for configure().
export function newCometD(t, { url = BX_URL, logLevel = 'warn', ack = false, timesync = false,
    config = {} } = {}) {
    adaptOnce();
    const cometd = new CometD();
    cometd.unregisterTransport('websocket');
    cometd.unregisterTransport('callback-polling');
    const jar = {};
    cometd.findTransport('long-polling').context = { cookieStore: jar };
    cometd.configure({ url, logLevel, ...config });
    cometd.bxCookies = jar;
    if (ack) cometd.registerExtension('ack', new AckExtension());
    if (timesync) {
        cometd.bxTimeSync = new TimeSyncExtension();
        cometd.registerExtension('timesync', cometd.bxTimeSync);
    }
    // Everything the server sent, whatever the client's listeners let through.
    cometd.bxIncoming = [];
    cometd.registerExtension('bxRecorder', {
        incoming(message) {
            cometd.bxIncoming.push(message);
            return message;
        },
    });
    t.after(() => cometdClose(cometd));
    return cometd;
}

export function cometdHandshake(cometd, props) {
    return withTimeout(new Promise((resolve, reject) => {
        cometd.handshake(props, (reply) => {
            if (reply.successful) resolve(reply);
            else reject(new Error('CometD handshake failed: ' + JSON.stringify(reply)));
        });
    }), 10000, 'CometD handshake');
}

// Resolves when the first /meta/connect after the handshake succeeded.
export function cometdConnected(cometd) {
    return withTimeout(new Promise((resolve) => {
        const l = cometd.addListener('/meta/connect', (m) => {
            if (m.successful) {
                cometd.removeListener(l);
                resolve(m);
            }
        });
    }), 10000, 'CometD /meta/connect');
}

// Subscribes; resolves with the subscription handle once the server acked.
export function cometdSubscribe(cometd, channel, onMessage) {
    return withTimeout(new Promise((resolve, reject) => {
        const sub = cometd.subscribe(channel, onMessage, (reply) => {
            if (reply.successful) resolve(sub);
            else reject(new Error(`CometD subscribe ${channel} failed: ${JSON.stringify(reply)}`));
        });
    }), 10000, `CometD subscribe ${channel}`);
}

export function cometdUnsubscribe(cometd, sub) {
    return withTimeout(new Promise((resolve, reject) => {
        cometd.unsubscribe(sub, (reply) => {
            if (reply.successful) resolve(reply);
            else reject(new Error('CometD unsubscribe failed: ' + JSON.stringify(reply)));
        });
    }), 10000, 'CometD unsubscribe');
}

export function cometdPublish(cometd, channel, data) {
    return withTimeout(new Promise((resolve, reject) => {
        cometd.publish(channel, data, (reply) => {
            if (reply.successful) resolve(reply);
            else reject(new Error(`CometD publish ${channel} failed: ${JSON.stringify(reply)}`));
        });
    }), 10000, `CometD publish ${channel}`);
}

export function cometdDisconnect(cometd) {
    return withTimeout(new Promise((resolve) => {
        cometd.disconnect((reply) => resolve(reply));
    }), 10000, 'CometD disconnect');
}

async function cometdClose(cometd) {
    if (cometd.isDisconnected()) return;
    try {
        await withTimeout(new Promise((resolve) => cometd.disconnect(() => resolve())), 5000,
            'CometD disconnect in cleanup');
    } catch {
        // leave it: the watchdog in this module keeps the suite from hanging
    }
}

// ------------------------------------------------------------------ Faye

// A Faye client on long-polling only. Records every incoming message (through
// an extension) in client.bxIncoming. Disconnected by the test's after hook.
export function newFaye(t, { url = BX_URL } = {}) {
    const client = new faye.Client(url);
    client.disable('websocket');
    client.disable('in-process');
    client.disable('eventsource');
    client.bxIncoming = [];
    client.addExtension({
        incoming(message, callback) {
            client.bxIncoming.push(message);
            callback(message);
        },
    });
    t.after(() => fayeClose(client));
    return client;
}

// Handshake (and first connect) through Faye's connect().
export function fayeConnect(client) {
    return withTimeout(new Promise((resolve) => client.connect(() => resolve())), 10000,
        'Faye handshake');
}

export function fayeClientId(client) {
    return client._dispatcher.clientId;
}

// The Cookie header Faye sends (its tough-cookie jar), e.g. "BAYEUX_BROWSER=...".
export function fayeCookie(client) {
    const jar = client._dispatcher.cookies;
    return jar.getCookiesSync(client._dispatcher.endpoint.href)
        .map((c) => c.cookieString()).join('; ');
}

// Subscribes; onMessage(channel, data). Resolves with { sub } once the server
// acked (not the Subscription itself: it is a thenable and would be adopted).
export async function fayeSubscribe(client, channel, onMessage) {
    const sub = client.subscribe(channel);
    if (onMessage) sub.withChannel(onMessage);
    await withTimeout(Promise.resolve(sub), 10000, `Faye subscribe ${channel}`);
    return { sub };
}

// Faye's unsubscribe has no callback: wait for the server's reply instead.
export async function fayeUnsubscribe(client, sub, channel) {
    const before = client.bxIncoming.length;
    sub.cancel();
    await until(() => client.bxIncoming.slice(before).some((m) =>
        m.channel === '/meta/unsubscribe' && m.successful !== undefined &&
        [].concat(m.subscription).includes(channel)), 10000, `Faye unsubscribe ${channel}`);
}

export function fayePublish(client, channel, data) {
    return withTimeout(Promise.resolve(client.publish(channel, data)), 10000,
        `Faye publish ${channel}`);
}

export async function fayeDisconnect(client) {
    const p = client.disconnect();
    if (p) await withTimeout(Promise.resolve(p), 10000, 'Faye disconnect');
}

async function fayeClose(client) {
    try {
        if (client._state === client.CONNECTED) {
            await withTimeout(Promise.resolve(client.disconnect()), 5000,
                'Faye disconnect in cleanup');
        }
    } catch {
        // fall through: stop it locally
    }
    // Whatever its state, make sure it schedules nothing more.
    client._advice.reconnect = client.NONE;
    client._state = client.DISCONNECTED;
    client._dispatcher.close();
}

// How a stream of numbers arrived: each number's first arrival in `seen`,
// the repeats in `dups`, and how many arrived after a larger one.
export function sequenceOf(nums) {
    const seen = new Set();
    const dups = [];
    let disorder = 0;
    let last = -1;
    for (const n of nums) {
        if (seen.has(n)) {
            dups.push(n);
            continue;
        }
        seen.add(n);
        if (n < last) disorder += 1;
        last = n;
    }
    return { seen, dups, disorder };
}

// Calls fn with each line a child process prints on stream (without the
// newline), as the lines arrive.
export function onLines(stream, fn) {
    let partial = '';
    stream.on('data', (d) => {
        partial += d;
        let nl;
        while ((nl = partial.indexOf('\n')) >= 0) {
            const line = partial.slice(0, nl);
            partial = partial.slice(nl + 1);
            fn(line);
        }
    });
}

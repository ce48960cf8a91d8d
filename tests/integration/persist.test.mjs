// Persistence: what an ack client is promised when bayeuxd, a responder or
// the web server dies under it (kill -9, then started again by $BX_CTL), and
// the bounds that keep the database and the queues from growing.
//
// The streams: a raw publisher sends numbered messages one request of BATCH
// publishes at a time; a request that fails in any way is sent again (its
// messages then count as "retried"). A CometD client with the AckExtension
// receives them. In the end it must have every message whose publish was
// answered successful (none lost), in order, a message twice only if its
// publish was retried (its first reply lost), and the same clientId (no new
// handshake). The counts go to the TAP output as diagnostics.
//
// The long tests run behind nginx only; the others run everywhere.
import test from 'node:test';
import assert from 'node:assert/strict';

import {
    BX_TMP, BX_DATABASE, TIMEOUT_MS, MAX_INTERVAL_MS, opts, nginxOpts, uniq, sleep, until,
    rawClient, newCometD, cometdHandshake, cometdConnected, cometdSubscribe,
    killDispatcher, startDispatcher, restartDispatcher, restoreDispatcher, useDispatcherFlags,
    killResponderWorker, restartResponder, restartWebServer, checkDb, dbSize, sequenceOf,
} from './lib.mjs';

const T = TIMEOUT_MS;
const RETRY_MS = 100;

// A raw publisher whose session a connect loop keeps alive.
async function publisher(t) {
    const p = rawClient(t, { name: 'publisher' });
    await p.ready();
    const stop = p.keepAlive();
    t.after(stop);
    return p;
}

// A CometD client with the AckExtension, subscribed to ch. st.got: the n of
// every delivery in arrival order; st.handshakes: clientIds of successful
// handshakes; st.connectFailures: failed /meta/connect.
async function ackSubscriber(t, ch) {
    const s = newCometD(t, { ack: true });
    const st = { got: [], handshakes: [], connectFailures: 0, cometd: s };
    s.addListener('/meta/handshake', (m) => {
        if (m.successful) st.handshakes.push(m.clientId);
    });
    s.addListener('/meta/connect', (m) => {
        if (!m.successful) st.connectFailures += 1;
    });
    const connected = cometdConnected(s);
    const h = await cometdHandshake(s);
    assert.equal(h.ext && h.ext.ack, true, 'the server grants the ack extension');
    await connected;
    await cometdSubscribe(s, ch, (m) => st.got.push(m.data.n));
    return st;
}

// Publishes {n, pad} for n in [0, count) on ch. disruptions: [{ at, what,
// run, pause }]: run() starts once `at` messages are answered; with pause the
// stream waits for it, else publishing goes on meanwhile. Resolves with
// { ok: Set of n answered successful, retried: Set of n sent more than once,
// failedRequests, handshakes (of the publisher, after the first), events
// (what was done when) }.
async function stream(p, ch, count, { batch = 25, pad = '', disruptions = [] } = {}) {
    const ok = new Set();
    const retried = new Set();
    let failedRequests = 0;
    let handshakes = 0;
    const pending = [...disruptions].sort((a, b) => a.at - b.at);
    const running = [];
    const events = [];
    for (let base = 0; base < count; base += batch) {
        while (pending.length && ok.size >= pending[0].at) {
            const d = pending.shift();
            events.push(`${d.what} after ${ok.size}`);
            const r = d.run();
            r.catch(() => {});      // handled: Promise.all below rethrows it
            if (d.pause) await r; else running.push(r);
        }
        let todo = [];
        for (let n = base; n < Math.min(base + batch, count); n += 1) todo.push(n);
        for (let attempt = 0; todo.length; attempt += 1) {
            if (attempt > 0) {
                for (const n of todo) retried.add(n);
                if (attempt > 300) throw new Error(`publishes ${todo} failed 300 times`);
                await sleep(RETRY_MS);
            }
            const msgs = todo.map((n) => ({
                channel: ch, data: { n, pad }, id: p.nextId(), clientId: p.clientId,
            }));
            let res;
            try {
                res = await p.send(msgs, { timeoutMs: 15000 });
            } catch {
                failedRequests += 1;
                continue;
            }
            const replies = new Map((res.messages || []).filter((m) => m && m.id !== undefined)
                .map((m) => [m.id, m]));
            const failed = [];
            let unknown = false;
            msgs.forEach((m, i) => {
                const r = replies.get(m.id);
                if (r && r.successful === true) ok.add(todo[i]);
                else {
                    failed.push(todo[i]);
                    if (r && String(r.error || '').startsWith('402')) unknown = true;
                }
            });
            if (failed.length) failedRequests += 1;
            if (unknown) {
                handshakes += 1;
                await p.handshake();
            }
            todo = failed;
        }
    }
    await Promise.all(running);
    return { ok, retried, failedRequests, handshakes, events };
}

// Waits until the subscriber has every n in ok (or 30 s), then a little
// more for late duplicates; returns the counts.
async function settle(st, ok) {
    const has = () => {
        const got = new Set(st.got);
        for (const n of ok) if (!got.has(n)) return false;
        return true;
    };
    try {
        await until(has, 30000, 'every acknowledged message at the subscriber');
    } catch {
        // counted below
    }
    await sleep(500);
}

function analyse(got, ok, retried) {
    const { seen, dups, disorder } = sequenceOf(got);
    const lost = [...ok].filter((n) => !seen.has(n));
    const badDups = dups.filter((n) => !retried.has(n));
    return { lost, dups, badDups, disorder };
}

// The stream test's verdict, with its counts in the TAP output.
function verdict(t, name, count, st, r, clientId) {
    const a = analyse(st.got, r.ok, r.retried);
    t.diagnostic(`${name} (${r.events.join(', ')}): ${count} published, ` +
        `${r.ok.size} answered successful, ` +
        `${r.retried.size} retried in ${r.failedRequests} failed requests, ` +
        `${r.handshakes} publisher re-handshakes; subscriber got ${st.got.length}: ` +
        `lost ${a.lost.length}, duplicates ${a.dups.length} (${a.badDups.length} never ` +
        `retried), out of order ${a.disorder}, failed connects ${st.connectFailures}, ` +
        `handshakes ${st.handshakes.length}`);
    assert.equal(r.ok.size, count, 'every publish answered successful in the end');
    assert.deepEqual(a.lost.slice(0, 20), [], `lost ${a.lost.length} (first 20 shown)`);
    assert.equal(a.disorder, 0, 'out of order');
    assert.deepEqual(a.badDups.slice(0, 20), [],
        `${a.badDups.length} duplicates of messages published only once (first 20 shown)`);
    assert.deepEqual(st.handshakes, [clientId], 'the subscriber kept its session');
    assert.equal(st.cometd.getClientId(), clientId);
}

// ------------------------------------------------------------------ restarts

test('persist: 10,000 messages to an ack client across kill -9 of bayeuxd', nginxOpts(150000),
    async (t) => {
        t.after(restoreDispatcher);
        const ch = '/' + uniq('stream');
        const st = await ackSubscriber(t, ch);
        const clientId = st.handshakes[0];
        const p = await publisher(t);
        const count = 10000;
        const r = await stream(p, ch, count, {
            disruptions: [
                { at: count / 2, what: 'kill -9 bayeuxd', run: () => restartDispatcher() },
            ],
        });
        await settle(st, r.ok);
        verdict(t, 'kill -9 bayeuxd', count, st, r, clientId);
    });

test('persist: an ack client across kill -9 of the responders', nginxOpts(90000),
    async (t) => {
        const ch = '/' + uniq('stream');
        const st = await ackSubscriber(t, ch);
        const clientId = st.handshakes[0];
        const p = await publisher(t);
        const count = 3000;
        const r = await stream(p, ch, count, {
            disruptions: [
                // bayeux-fcgi's workers mid stream; its supervisor starts
                // new ones.
                { at: 1000, what: 'kill -9 workers', run: () => killResponderWorker() },
                // With the subscriber idle, its connect held in a worker:
                // kill -9 bayeux-fcgi and its workers, start it again.
                {
                    at: 2000,
                    what: 'kill -9 bayeux-fcgi',
                    pause: true,
                    run: async () => {
                        await until(() => st.got.length >= 2000, 15000,
                            'the subscriber to catch up');
                        await sleep(T / 4);
                        await restartResponder();
                    },
                },
            ],
        });
        await settle(st, r.ok);
        verdict(t, 'kill -9 responders', count, st, r, clientId);
    });

test('persist: an ack client across a restart of nginx', nginxOpts(90000), async (t) => {
    const ch = '/' + uniq('stream');
    const st = await ackSubscriber(t, ch);
    const clientId = st.handshakes[0];
    const p = await publisher(t);
    const count = 3000;
    const r = await stream(p, ch, count, {
        disruptions: [{ at: 1500, what: 'restart nginx', run: () => restartWebServer() }],
    });
    await settle(st, r.ok);
    verdict(t, 'restart nginx', count, st, r, clientId);
});

const dataOf = (res) => (res.messages || []).filter((m) => m.successful === undefined &&
    'data' in m);
const seqOf = (m) => (m.ext ? m.ext.seq : undefined);

test('persist: sessions, subscriptions, unacked messages and history survive kill -9',
    opts(40000), async (t) => {
        t.after(restoreDispatcher);
        const ch = '/hist/' + uniq('survive');
        const a = rawClient(t, { name: 'plain' });
        await a.ready();
        await a.mustSubscribe(ch);
        const b = rawClient(t, { name: 'ack' });
        assert.equal((await b.ackHandshake()).reply.successful, true);
        const b0 = (await b.connect()).reply.ext.ack;
        await b.mustSubscribe(ch);
        const p = rawClient(t, { name: 'publisher' });
        await p.ready();
        for (let n = 1; n <= 3; n += 1) await p.mustPublish(ch, n);
        const got = await a.pollUntil((r) => r.length >= 3);
        const lastSeq = seqOf(got[2]);
        assert.equal(lastSeq, 3);
        const b1 = await b.connect({ ext: { ack: b0 } }, { timeoutMs: T + 5000 });
        assert.deepEqual(dataOf(b1.res).map((m) => m.data), [1, 2, 3]);
        for (let n = 4; n <= 6; n += 1) await p.mustPublish(ch, n);

        const ids = [a.clientId, b.clientId, p.clientId];
        await killDispatcher('SIGKILL');
        await startDispatcher();

        // The ack session, never having acked, gets all six, in order.
        const b2 = await b.connect({ ext: { ack: b0 } }, { timeoutMs: T + 5000 });
        assert.equal(b2.reply.successful, true, `ack session after the restart: ${b2.res.body}`);
        assert.deepEqual(dataOf(b2.res).map((m) => m.data), [1, 2, 3, 4, 5, 6]);
        assert.ok(b2.res.elapsed < T / 2, 'unacked messages: at once');
        // The plain session is still known (its unsent queue may be gone).
        const a2 = await a.connect({}, { timeoutMs: T + 5000 });
        assert.equal(a2.reply.successful, true, `plain session after the restart: ${a2.res.body}`);
        // A new session replays from the history.
        const c = rawClient(t, { name: 'replay' });
        await c.ready();
        const s = await c.subscribe(ch, { ext: { replay: lastSeq } });
        assert.deepEqual(s.reply.ext && s.reply.ext.replay, { [ch]: { last: 6, missed: 0 } });
        await c.pollUntil((r) => r.length >= 3);
        // The publisher's session too; numbers go on, never reused.
        await p.mustPublish(ch, 7);
        const all = await c.pollUntil((r) => r.some((m) => m.data === 7));
        assert.deepEqual(all.map((m) => [seqOf(m), m.data]),
            [[4, 4], [5, 5], [6, 6], [7, 7]]);
        const a3 = await a.pollUntil((r) => r.some((m) => m.data === 7));
        assert.equal(seqOf(a3.find((m) => m.data === 7)), 7, 'the subscription survived');
        assert.deepEqual([a.clientId, b.clientId, p.clientId], ids, 'no new handshake');
        assert.equal(a.handshakes + b.handshakes + p.handshakes, 3);
    });

test('persist: a session survives a restart with SIGTERM too', opts(30000), async (t) => {
    t.after(restoreDispatcher);
    const ch = '/' + uniq('term');
    const b = rawClient(t, { name: 'ack' });
    await b.ackHandshake();
    await b.connect();
    await b.mustSubscribe(ch);
    const p = rawClient(t, { name: 'publisher' });
    await p.ready();
    await p.mustPublish(ch, 'before');
    await restartDispatcher({ signal: 'SIGTERM' });
    await p.mustPublish(ch, 'after');
    const got = await b.pollUntil((r) => r.length >= 2);
    assert.deepEqual(got.map((m) => m.data), ['before', 'after']);
    assert.equal(b.handshakes, 1);
});

// ------------------------------------------------------------------ bounds

// An ack session that stays away while 200 messages are published to it.
async function stayAway(t, flags) {
    await useDispatcherFlags(t, flags);
    const ch = '/' + uniq('away');
    const s = rawClient(t, { name: 'away' });
    assert.equal((await s.ackHandshake()).reply.successful, true);
    const first = await s.connect();
    await s.mustSubscribe(ch);
    const p = rawClient(t, { name: 'publisher' });
    await p.ready();
    for (let base = 0; base < 200; base += 50) {
        const msgs = [];
        for (let n = base; n < base + 50; n += 1) {
            msgs.push({ channel: ch, data: n, id: p.nextId(), clientId: p.clientId });
        }
        const res = await p.send(msgs);
        assert.ok(res.messages && res.messages.every((m) => m.successful),
            `publish: ${res.body.slice(0, 300)}`);
    }
    return { s, b0: first.reply.ext.ack };
}

test('bounds: max-queue drops the oldest of an ack session\'s messages', opts(30000),
    async (t) => {
        const { s, b0 } = await stayAway(t, ['--max-queue=50']);
        const r = await s.connect({ ext: { ack: b0 } }, { timeoutMs: T + 5000 });
        assert.equal(r.reply.successful, true, r.res.body.slice(0, 300));
        const got = dataOf(r.res).map((m) => m.data);
        assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => 150 + i), 'the newest 50');
    });

test('bounds: queue-overflow=end-session ends the session (402)', opts(30000),
    async (t) => {
        const { s, b0 } = await stayAway(t, ['--max-queue=50', '--queue-overflow=end-session']);
        const old = s.clientId;
        const r = await s.connect({ ext: { ack: b0 } }, { timeoutMs: T + 5000 });
        assert.equal(r.reply.successful, false, r.res.body.slice(0, 300));
        assert.match(String(r.reply.error), /^402/);
        assert.equal(r.reply.advice && r.reply.advice.reconnect, 'handshake');
        const h = await s.ackHandshake();
        assert.equal(h.reply.successful, true);
        assert.notEqual(s.clientId, old);
    });

test('bounds: an expired session leaves nothing in the database', nginxOpts(40000),
    async (t) => {
        const db = `${BX_TMP}/expiry.db`;
        await useDispatcherFlags(t, [`--database=${db}`]);
        const empty = await checkDb(db);
        assert.ok(empty.ok, `check-db: ${empty.output}`);
        assert.equal(empty.sessions, 0, empty.output);
        const s = rawClient(t, { name: 'away' });
        await s.ackHandshake();
        await s.connect();
        const ch = '/' + uniq('exp');
        await s.mustSubscribe([ch, ch + 'b']);
        const p = rawClient(t, { name: 'publisher' });
        await p.ready();
        for (let n = 0; n < 10; n += 1) await p.mustPublish(ch, n);
        const full = await checkDb(db);
        t.diagnostic(`while queued: ${full.output}`);
        assert.ok(full.ok, full.output);
        assert.equal(full.sessions, 2, full.output);
        assert.equal(full.subscriptions, 2, full.output);
        assert.equal(full.queued, 10, full.output);
        assert.ok(full.messages >= 10, full.output);
        await p.disconnect();
        // s stops connecting: it expires after max-interval.
        let last;
        for (const deadline = Date.now() + MAX_INTERVAL_MS + 8000; Date.now() < deadline;) {
            last = await checkDb(db);
            if (last.sessions === 0 && last.subscriptions === 0 && last.queued === 0 &&
                last.messages === 0) break;
            await sleep(500);
        }
        t.diagnostic(`after expiry: ${last.output}`);
        assert.ok(last.ok, last.output);
        assert.deepEqual([last.sessions, last.subscriptions, last.queued, last.messages],
            [0, 0, 0, 0], `sessions, subscriptions, queued, messages: ${last.output}`);
    });

test('bounds: the database stays bounded under a steady stream', nginxOpts(60000),
    async (t) => {
        const db = `${BX_TMP}/size.db`;
        await useDispatcherFlags(t, [`--database=${db}`]);
        const ch = '/hist/' + uniq('size');          // history of 1000
        const st = await ackSubscriber(t, ch);
        const p = await publisher(t);
        const PHASE_MS = 5000;
        const pad = 'x'.repeat(200);
        let sent = 0;
        const runFor = async (ms) => {
            const end = Date.now() + ms;
            while (Date.now() < end) {
                const msgs = [];
                for (let i = 0; i < 20; i += 1) {
                    msgs.push({ channel: ch, data: { n: sent + i, pad }, id: p.nextId(),
                        clientId: p.clientId });
                }
                const res = await p.send(msgs);
                assert.ok(res.messages && res.messages.every((m) => m.successful),
                    `publish: ${res.body.slice(0, 300)}`);
                sent += 20;
                await sleep(10);
            }
        };
        await runFor(PHASE_MS);
        const size1 = dbSize(db);
        const sent1 = sent;
        await runFor(PHASE_MS);
        const size2 = dbSize(db);
        await until(() => st.got.length >= sent, 20000, 'the subscriber to catch up');
        const c = await checkDb(db);
        const mb = (n) => (n / 1048576).toFixed(2);
        const sizes = (z) => `${mb(z.db)} + ${mb(z.wal)} MB`;
        t.diagnostic(`size (database + WAL): ${sent1} messages -> ${sizes(size1)}, ` +
            `${sent} -> ${sizes(size2)}; ${c.output}`);
        assert.ok(sent1 >= 1000, `the stream is too slow to tell (${sent1} in ${PHASE_MS} ms)`);
        // Each on its own: the WAL (a few MB once checkpoints cycle) would
        // hide a growing database file in the sum.
        for (const k of ['db', 'wal']) {
            assert.ok(size2[k] <= size1[k] * 1.5 + 1048576,
                `${k} grew from ${size1[k]} to ${size2[k]} bytes (bound: 1.5x + 1 MB)`);
        }
        assert.ok(c.ok, c.output);
        assert.ok(c.history <= 1000, `history ${c.history} (kept: 1000)`);
        assert.ok(c.messages <= c.history + c.queued,
            `messages ${c.messages}: more than history + queued (${c.history} + ${c.queued})`);
    });

test('persist: bayeuxd --check-db finds the harness\'s database consistent', opts(),
    async (t) => {
        if (BX_DATABASE === ':memory:') {
            t.skip('BX_DATABASE is :memory:, there is no file to check');
            return;
        }
        const c = await checkDb(BX_DATABASE);
        assert.equal(c.code, 0, c.output);
        assert.ok(c.ok, c.output);
        assert.deepEqual(c.problems, []);
        assert.equal(c.schema, 2);
    });

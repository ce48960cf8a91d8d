// The extensions on the wire, with raw HTTP where the exact exchange matters:
// ack (reference/bayeux-wire.md 5.1), history numbers and replay (ext.seq,
// ext.replay), timesync (5.3) and the timestamp option (5.4).
//
// The harness gives bayeuxd a history for /chat/** and /hist/** (1000
// messages) and /trim/** (5 messages).
import test from 'node:test';
import assert from 'node:assert/strict';

import {
    TIMEOUT_MS, MAX_INTERVAL_MS, opts, uniq, sleep, until, rawClient, useDispatcherFlags,
    newCometD, cometdHandshake, cometdConnected,
} from './lib.mjs';

const T = TIMEOUT_MS;
const QUICK = T / 2;          // "at once": well under the hold timeout

// An ack session (handshake granted ext.ack, first connect done) and a
// plain publisher, both ready.
async function ackPair(t) {
    const c = rawClient(t, { name: 'ack' });
    const h = await c.ackHandshake();
    assert.equal(h.reply.successful, true, `ack handshake: ${h.res.body}`);
    assert.equal(h.reply.ext && h.reply.ext.ack, true, 'handshake reply ext.ack is true');
    const first = await c.connect({}, { timeoutMs: T + 5000 });
    assert.equal(first.reply.successful, true, `first connect: ${first.res.body}`);
    assert.ok(first.res.elapsed < QUICK, 'the first connect returns at once');
    const p = rawClient(t, { name: 'publisher' });
    await p.ready();
    return { c, p, first };
}

const ackOf = (r) => (r.reply && r.reply.ext ? r.reply.ext.ack : undefined);
const dataOf = (res) => (res.messages || []).filter((m) => m.successful === undefined &&
    'data' in m);

// ------------------------------------------------------------------ ack

test('ack: handshake without ext.ack is not an ack session', opts(), async (t) => {
    const c = rawClient(t);
    const { reply } = await c.handshake();
    assert.equal(reply.successful, true);
    assert.notEqual(reply.ext && reply.ext.ack, true, 'no ext.ack granted unasked');
    const { reply: cr } = await c.connect();
    assert.equal(cr.successful, true);
    assert.equal(cr.ext && cr.ext.ack, undefined, 'no ext.ack on a plain session\'s connect');
});

// CometD numbers every connect reply with a new batch; a server may also
// give an empty reply the last number again (there is nothing in it to
// lose), but a reply with messages always gets a number above every
// earlier one, or acking an older reply would drop it.
test('ack: every connect reply carries a batch number, new with messages', opts(),
    async (t) => {
        const { c, p, first } = await ackPair(t);
        const b0 = ackOf(first);
        assert.equal(typeof b0, 'number', `first connect reply ext.ack: ${first.res.body}`);
        // A held connect that times out empty is numbered too.
        const held = await c.connect({}, { timeoutMs: T + 5000 });
        assert.ok(held.res.elapsed >= T * 0.8, `an empty connect is held (${held.res.elapsed} ms)`);
        assert.equal(typeof ackOf(held), 'number', held.res.body);
        assert.ok(ackOf(held) >= b0, `batch ${ackOf(held)} after ${b0}`);
        const ch = '/' + uniq('batch');
        await c.mustSubscribe(ch);
        await p.mustPublish(ch, 'x');
        const full = await c.connect({}, { timeoutMs: T + 5000 });
        assert.deepEqual(dataOf(full.res).map((m) => m.data), ['x']);
        assert.ok(ackOf(full) > ackOf(held), `batch ${ackOf(full)} after ${ackOf(held)}`);
    });

test('ack: a lost reply is sent again at once, acking it ends it', opts(30000), async (t) => {
    const { c, p, first } = await ackPair(t);
    const ch = '/' + uniq('ack');
    await c.mustSubscribe(ch);
    const b0 = ackOf(first);
    await p.mustPublish(ch, 'm1');

    // The message arrives in a connect reply numbered B1.
    const r1 = await c.connect({ ext: { ack: b0 } }, { timeoutMs: T + 5000 });
    assert.equal(r1.reply.successful, true);
    assert.deepEqual(dataOf(r1.res).map((m) => m.data), ['m1'], `delivery: ${r1.res.body}`);
    const b1 = ackOf(r1);
    assert.ok(b1 > b0, `batch ${b1} after ${b0}`);

    // That reply was "lost": the client still acks b0. The message comes
    // again, at once, under a new batch number.
    const r2 = await c.connect({ ext: { ack: b0 } }, { timeoutMs: T + 5000 });
    assert.ok(r2.res.elapsed < QUICK,
        `unacked messages make the connect return at once (${Math.round(r2.res.elapsed)} ms)`);
    assert.equal(r2.reply.successful, true);
    assert.deepEqual(dataOf(r2.res), dataOf(r1.res), 'the same delivery again');
    const b2 = ackOf(r2);
    assert.ok(b2 > b1, `batch ${b2} after ${b1}`);

    // Acking b2 drops it: the next connect is held, and empty.
    const r3 = await c.connect({ ext: { ack: b2 } }, { timeoutMs: T + 5000 });
    assert.ok(r3.res.elapsed >= T * 0.8, `held after the ack (${Math.round(r3.res.elapsed)} ms)`);
    assert.equal(r3.reply.successful, true);
    assert.deepEqual(dataOf(r3.res), [], 'nothing after the ack');
});

test('ack: redelivery keeps the order and adds newer messages after', opts(30000), async (t) => {
    const { c, p, first } = await ackPair(t);
    const ch = '/' + uniq('ackorder');
    await c.mustSubscribe(ch);
    for (let n = 0; n < 5; n += 1) await p.mustPublish(ch, n);
    const r1 = await c.connect({ ext: { ack: ackOf(first) } }, { timeoutMs: T + 5000 });
    assert.deepEqual(dataOf(r1.res).map((m) => m.data), [0, 1, 2, 3, 4]);
    for (let n = 5; n < 8; n += 1) await p.mustPublish(ch, n);
    // Not acked: 0..4 again, then 5..7.
    const r2 = await c.connect({ ext: { ack: ackOf(first) } }, { timeoutMs: T + 5000 });
    assert.deepEqual(dataOf(r2.res).map((m) => m.data), [0, 1, 2, 3, 4, 5, 6, 7]);
    // Acking the first reply only: 5..7 again.
    for (let n = 8; n < 10; n += 1) await p.mustPublish(ch, n);
    const r3 = await c.connect({ ext: { ack: ackOf(r1) } }, { timeoutMs: T + 5000 });
    assert.deepEqual(dataOf(r3.res).map((m) => m.data), [5, 6, 7, 8, 9]);
});

test('ack: an ack session gets messages only in /meta/connect replies', opts(), async (t) => {
    const { c } = await ackPair(t);
    const ch = '/' + uniq('acksame');
    await c.mustSubscribe(ch);
    // Its own publish: the reply carries no delivery (a plain session's
    // would, piggybacked), the next connect does.
    const pr = await c.mustPublish(ch, 'own');
    assert.deepEqual(dataOf(pr.res), [], `publish reply: ${pr.res.body}`);
    const sr = await c.subscribe('/' + uniq('other'));
    assert.deepEqual(dataOf(sr.res), [], `subscribe reply: ${sr.res.body}`);
    const r = await c.connect({}, { timeoutMs: T + 5000 });
    assert.deepEqual(dataOf(r.res).map((m) => m.data), ['own']);
});

test('ack: a held connect is woken by a delivery', opts(), async (t) => {
    const { c, p } = await ackPair(t);
    const ch = '/' + uniq('ackwake');
    await c.mustSubscribe(ch);
    const pending = c.connect({}, { timeoutMs: T + 5000 });
    await sleep(T / 4);
    await p.mustPublish(ch, 'wake');
    const r = await pending;
    assert.ok(r.res.elapsed < T * 0.8, `released by the delivery (${r.res.elapsed} ms)`);
    assert.deepEqual(dataOf(r.res).map((m) => m.data), ['wake']);
});

test('ack: the CometD AckExtension negotiates and receives', opts(), async (t) => {
    const cometd = newCometD(t, { ack: true });
    const connected = cometdConnected(cometd);
    const h = await cometdHandshake(cometd);
    assert.equal(h.ext && h.ext.ack, true);
    await connected;
    const out = cometd.bxIncoming.filter((m) => m.channel === '/meta/connect' && m.successful);
    assert.ok(out.length >= 1 && typeof out[0].ext.ack === 'number',
        'connect replies carry ext.ack');
});

// ------------------------------------------------------------------ history

const seqOf = (m) => (m.ext ? m.ext.seq : undefined);

test('history: deliveries on a history channel carry ext.seq from 1', opts(), async (t) => {
    const c = rawClient(t, { name: 'sub' });
    await c.ready();
    const ch = '/hist/' + uniq('seq');
    const plain = '/' + uniq('plain');
    await c.mustSubscribe([ch, plain]);
    const p = rawClient(t, { name: 'publisher' });
    await p.ready();
    for (let n = 1; n <= 3; n += 1) await p.mustPublish(ch, n);
    await p.mustPublish(plain, 'x');
    const got = await c.pollUntil((r) => r.some((m) => m.channel === plain));
    assert.deepEqual(got.filter((m) => m.channel === ch).map(seqOf), [1, 2, 3]);
    assert.equal(seqOf(got.find((m) => m.channel === plain)), undefined,
        'no ext.seq outside a history channel');
});

test('replay: a new session gets what it missed with ext.replay', opts(40000), async (t) => {
    const ch = '/hist/' + uniq('replay');
    const a = rawClient(t, { name: 'a' });
    await a.ready();
    await a.mustSubscribe(ch);
    const p = rawClient(t, { name: 'publisher' });
    await p.ready();
    const stopKeep = p.keepAlive();
    t.after(stopKeep);
    for (let n = 1; n <= 5; n += 1) await p.mustPublish(ch, { n });
    const got = await a.pollUntil((r) => r.filter((m) => m.channel === ch).length >= 5);
    assert.deepEqual(got.map((m) => m.data.n), [1, 2, 3, 4, 5]);
    const lastSeq = seqOf(got[4]);
    assert.equal(lastSeq, 5);

    // a stops connecting; what is published meanwhile dies with its session.
    for (let n = 6; n <= 8; n += 1) await p.mustPublish(ch, { n });
    await sleep(MAX_INTERVAL_MS + 2500);
    const gone = await a.connect();
    assert.equal(gone.reply.successful, false, 'the session expired');
    assert.match(String(gone.reply.error), /^402/);
    for (let n = 9; n <= 10; n += 1) await p.mustPublish(ch, { n });

    // A new session asks for everything after lastSeq.
    a.deliveries = [];
    await a.ready();
    const s = await a.subscribe(ch, { ext: { replay: lastSeq } });
    assert.equal(s.reply.successful, true, `subscribe with replay: ${s.res.body}`);
    assert.deepEqual(s.reply.ext && s.reply.ext.replay, { [ch]: { last: 10, missed: 0 } },
        'subscribe reply ext.replay');
    await a.pollUntil((r) => r.filter((m) => m.channel === ch).length >= 5);
    await p.mustPublish(ch, { n: 11 });
    const all = await a.pollUntil((r) => r.some((m) => m.data && m.data.n === 11));
    assert.deepEqual(all.map((m) => m.data.n), [6, 7, 8, 9, 10, 11], 'missed ones, then new');
    assert.deepEqual(all.map(seqOf), [6, 7, 8, 9, 10, 11]);
});

test('replay: numbers per channel, and trimmed messages counted as missed', opts(),
    async (t) => {
        const trim = '/trim/' + uniq('r');      // history of 5
        const hist = '/hist/' + uniq('r');
        const p = rawClient(t, { name: 'publisher' });
        await p.ready();
        for (let n = 1; n <= 10; n += 1) await p.mustPublish(trim, n);
        for (let n = 1; n <= 3; n += 1) await p.mustPublish(hist, n);
        const a = rawClient(t, { name: 'a' });
        await a.ready();
        const s = await a.subscribe([trim, hist], { ext: { replay: { [trim]: 2, [hist]: 1 } } });
        assert.equal(s.reply.successful, true, `subscribe: ${s.res.body}`);
        // After 2, 3..10 would follow; 3..5 are gone (only 6..10 are kept).
        assert.deepEqual(s.reply.ext && s.reply.ext.replay, {
            [trim]: { last: 10, missed: 3 },
            [hist]: { last: 3, missed: 0 },
        });
        const got = await a.pollUntil((r) => r.length >= 7);
        await sleep(200);
        const of = (ch) => a.received(ch).map((m) => [seqOf(m), m.data]);
        assert.deepEqual(of(trim), [[6, 6], [7, 7], [8, 8], [9, 9], [10, 10]]);
        assert.deepEqual(of(hist), [[2, 2], [3, 3]]);
        assert.equal(got.length, 7);
    });

test('replay: a number at or past the last replays nothing', opts(), async (t) => {
    const ch = '/hist/' + uniq('none');
    const p = rawClient(t, { name: 'publisher' });
    await p.ready();
    for (let n = 1; n <= 3; n += 1) await p.mustPublish(ch, n);
    const a = rawClient(t, { name: 'a' });
    await a.ready();
    const s = await a.subscribe(ch, { ext: { replay: 3 } });
    assert.deepEqual(s.reply.ext && s.reply.ext.replay, { [ch]: { last: 3, missed: 0 } });
    await p.mustPublish(ch, 4);
    const got = await a.pollUntil((r) => r.length >= 1);
    await sleep(200);
    assert.deepEqual(a.received().map(seqOf), [4]);
    assert.equal(got[0].data, 4);
});

test('replay: an ack session gets the replay in connect replies, in order', opts(),
    async (t) => {
        const ch = '/hist/' + uniq('ackreplay');
        const p = rawClient(t, { name: 'publisher' });
        await p.ready();
        for (let n = 1; n <= 4; n += 1) await p.mustPublish(ch, n);
        const { c } = await ackPair(t);
        const s = await c.subscribe(ch, { ext: { replay: 0 } });
        assert.deepEqual(dataOf(s.res), [], 'nothing in the subscribe reply');
        const r = await c.connect({}, { timeoutMs: T + 5000 });
        assert.ok(r.res.elapsed < QUICK, 'replayed messages make the connect return at once');
        assert.deepEqual(dataOf(r.res).map((m) => [seqOf(m), m.data]),
            [[1, 1], [2, 2], [3, 3], [4, 4]]);
    });

// ------------------------------------------------------------------ timesync

test('timesync: meta replies answer ext.timesync', opts(), async (t) => {
    const c = rawClient(t);
    const tc = Date.now();
    const { reply } = await c.handshake({ ext: { timesync: { tc, l: 0, o: 0 } } });
    const after = Date.now();
    assert.equal(reply.successful, true);
    const ts = reply.ext && reply.ext.timesync;
    assert.ok(ts && typeof ts === 'object',
        `handshake reply ext.timesync: ${JSON.stringify(reply)}`);
    assert.equal(ts.tc, tc, 'tc echoed');
    // Same host, same clock: the server's receive time lies in between.
    assert.ok(ts.ts >= tc - 1 && ts.ts <= after + 1, `ts ${ts.ts} within [${tc}, ${after}]`);
    assert.ok(ts.p >= 0 && ts.p <= after - tc + 1, `p ${ts.p}`);
    assert.equal(ts.a, tc + 0 + 0 - ts.ts, 'a = tc + o + l - ts');

    // p is the time the server held the message: a held connect.
    await c.connect();
    const tc2 = Date.now();
    const held = await c.connect({ ext: { timesync: { tc: tc2, l: 0, o: 0 } } },
        { timeoutMs: T + 5000 });
    const ts2 = held.reply.ext && held.reply.ext.timesync;
    assert.ok(ts2, `held connect reply ext.timesync: ${held.res.body}`);
    assert.ok(ts2.p >= T * 0.8 && ts2.p <= held.res.elapsed + 1,
        `p ${ts2.p} is the hold (${Math.round(held.res.elapsed)} ms)`);

    // Old style (no l): tc, ts and p only.
    const { reply: r3 } = await c.subscribe('/' + uniq('ts'), { ext: { timesync: { tc } } });
    const ts3 = r3.ext && r3.ext.timesync;
    assert.ok(ts3 && ts3.tc === tc && typeof ts3.ts === 'number' && typeof ts3.p === 'number',
        `old-style reply: ${JSON.stringify(r3)}`);
    assert.equal(ts3.a, undefined, 'no a without l');

    // With l and o from earlier samples, an answer comes only when the
    // client is off by 25 ms or more.
    const tc4 = Date.now();
    const { reply: r4 } = await c.subscribe('/' + uniq('ts'),
        { ext: { timesync: { tc: tc4, l: 1, o: 0 } } });
    assert.equal(r4.ext && r4.ext.timesync, undefined, `accurate enough: ${JSON.stringify(r4)}`);
    const tc5 = Date.now();
    const { reply: r5 } = await c.subscribe('/' + uniq('ts'),
        { ext: { timesync: { tc: tc5, l: 1, o: 5000 } } });
    const ts5 = r5.ext && r5.ext.timesync;
    assert.ok(ts5, `5 s off: ${JSON.stringify(r5)}`);
    assert.equal(ts5.a, tc5 + 5000 + 1 - ts5.ts);
});

test('timesync: the CometD TimeSyncExtension finds no offset', opts(), async (t) => {
    const cometd = newCometD(t, { timesync: true });
    const connected = cometdConnected(cometd);
    await cometdHandshake(cometd);
    await connected;
    await until(() => cometd.bxIncoming.some((m) => m.ext && m.ext.timesync), 5000,
        'a timesync reply');
    const offset = cometd.bxTimeSync.getTimeOffset();
    assert.ok(Math.abs(offset) < 50, `offset ${offset} ms on one host`);
});

// ------------------------------------------------------------------ timestamp

const RFC1123 = new RegExp('^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \\d{2} ' +
    '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \\d{4} \\d{2}:\\d{2}:\\d{2} GMT$');

test('timestamp: off by default, deliveries unstamped', opts(), async (t) => {
    const c = rawClient(t);
    await c.ready();
    const ch = '/' + uniq('nostamp');
    await c.mustSubscribe(ch);
    await c.mustPublish(ch, 'x');
    const [m] = await c.pollUntil((r) => r.length >= 1);
    assert.equal(m.timestamp, undefined);
});

test('timestamp: with timestamp=on deliveries carry an RFC 1123 time', opts(30000),
    async (t) => {
        await useDispatcherFlags(t, ['--timestamp=on']);
        const c = rawClient(t);
        await c.ready();
        const ch = '/' + uniq('stamp');
        await c.mustSubscribe(ch);
        const before = Date.now();
        await c.mustPublish(ch, 'x');
        const [m] = await c.pollUntil((r) => r.length >= 1);
        const after = Date.now();
        assert.match(String(m.timestamp), RFC1123);
        const when = Date.parse(m.timestamp);
        assert.ok(when >= Math.floor(before / 1000) * 1000 - 1000 && when <= after + 1000,
            `${m.timestamp} is now`);
    });

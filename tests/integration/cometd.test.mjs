// The stock CometD JavaScript client (npm cometd 9 + cometd-nodejs-client 2)
// against the server, long-polling; and CometD and Faye talking to each other.
import test from 'node:test';
import assert from 'node:assert/strict';

import {
    opts, uniq, until, TIMEOUT_MS, rawClient,
    newCometD, cometdHandshake, cometdConnected, cometdSubscribe, cometdUnsubscribe,
    cometdPublish, cometdDisconnect,
    newFaye, fayeConnect, fayeSubscribe, fayePublish,
} from './lib.mjs';

const T2 = TIMEOUT_MS * 2;

// A CometD client that has handshaken and completed its first connect.
async function ready(t) {
    const cometd = newCometD(t);
    const connected = cometdConnected(cometd);
    const reply = await cometdHandshake(cometd);
    await connected;
    return { cometd, reply };
}

test('cometd: handshake and first connect', opts(), async (t) => {
    const cometd = newCometD(t);
    const connected = cometdConnected(cometd);
    const reply = await cometdHandshake(cometd);
    assert.equal(reply.successful, true);
    assert.match(reply.clientId, /^[0-9a-z]{26,}$/);
    assert.equal(cometd.getClientId(), reply.clientId);
    assert.equal(reply.version, '1.0');
    assert.ok(reply.supportedConnectionTypes.includes('long-polling'));
    const c = await connected;
    assert.equal(c.successful, true);
    assert.equal(cometd.getTransport().type, 'long-polling');
    // The server's advice replaced the client's default 60 s.
    assert.equal(cometd.getAdvice().timeout, TIMEOUT_MS);
    assert.match(cometd.bxCookies.BAYEUX_BROWSER || '', /^[0-9A-Za-z]+$/,
        'BAYEUX_BROWSER cookie stored by the client');
});

test('cometd: connect stays up across several hold timeouts', opts(), async (t) => {
    const { cometd } = await ready(t);
    let connects = 0;
    let failures = 0;
    cometd.addListener('/meta/connect', (m) => {
        if (m.successful) connects += 1; else failures += 1;
    });
    // Each held connect lasts about TIMEOUT_MS: wait for two of them.
    await until(() => connects >= 2, TIMEOUT_MS * 3 + 3000, 'two held connects');
    assert.equal(failures, 0, 'no failed /meta/connect');
});

test('cometd: subscribe', opts(), async (t) => {
    const { cometd } = await ready(t);
    const ch = '/' + uniq('sub');
    const replies = [];
    cometd.addListener('/meta/subscribe', (m) => replies.push(m));
    const sub = await cometdSubscribe(cometd, ch, () => {});
    assert.equal(sub.channel, ch);
    assert.equal(replies.length, 1);
    assert.equal(replies[0].successful, true);
    assert.equal(replies[0].subscription, ch);
});

test('cometd: publish and receive', opts(), async (t) => {
    const { cometd: a } = await ready(t);
    const { cometd: b } = await ready(t);
    const ch = '/' + uniq('chat') + '/room';
    const got = [];
    await cometdSubscribe(a, ch, (m) => got.push(m));
    const data = { text: 'hello', n: 1, nested: { list: [1, 'two', null, true] }, u: 'é€😀' };
    const reply = await cometdPublish(b, ch, data);
    assert.equal(reply.successful, true);
    await until(() => got.length >= 1, 5000, 'the delivery');
    assert.equal(got[0].channel, ch);
    assert.deepEqual(got[0].data, data);
    assert.equal(got[0].clientId, undefined, 'no clientId in a delivery');
    assert.equal(got[0].id, undefined, 'no id in a delivery');
});

test('cometd: a subscribed publisher receives its own message', opts(), async (t) => {
    const { cometd } = await ready(t);
    const ch = '/' + uniq('self');
    const got = [];
    await cometdSubscribe(cometd, ch, (m) => got.push(m.data));
    await cometdPublish(cometd, ch, 'me');
    await until(() => got.length >= 1, 5000, 'own message');
    await cometdPublish(cometd, ch, 'me again');
    await until(() => got.length >= 2, 5000, 'own second message');
    assert.deepEqual(got, ['me', 'me again']);
});

test('cometd: 200 messages arrive in order', opts(30000), async (t) => {
    const { cometd: a } = await ready(t);
    const { cometd: b } = await ready(t);
    const ch = '/' + uniq('order');
    const got = [];
    await cometdSubscribe(a, ch, (m) => got.push(m.data.n));
    // Batches of 20 messages in one request each, the next batch after the
    // previous one was acknowledged.
    for (let base = 0; base < 200; base += 20) {
        const acks = [];
        b.batch(() => {
            for (let n = base; n < base + 20; n += 1) {
                acks.push(new Promise((resolve, reject) => {
                    b.publish(ch, { n }, (r) => (r.successful ? resolve() : reject(
                        new Error('publish failed: ' + JSON.stringify(r)))));
                }));
            }
        });
        await Promise.all(acks);
    }
    await until(() => got.length >= 200, 15000, '200 messages');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(got.length, 200, 'exactly 200 messages');
    assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i));
});

test('cometd: wildcard * receives one segment only', opts(), async (t) => {
    const { cometd: a } = await ready(t);
    const { cometd: b } = await ready(t);
    const base = '/' + uniq('wild');
    const got = [];
    await cometdSubscribe(a, base + '/*', (m) => got.push(m.channel));
    for (const ch of [base + '/a', base + '/b/c', base, '/' + uniq('other') + '/a',
        base + 'x/a', base + '/zz']) {
        await cometdPublish(b, ch, 'x');
    }
    await until(() => got.includes(base + '/zz'), 5000, 'the last matching message');
    assert.deepEqual(got, [base + '/a', base + '/zz']);
});

test('cometd: wildcard ** receives every depth below', opts(), async (t) => {
    const { cometd: a } = await ready(t);
    const { cometd: b } = await ready(t);
    const base = '/' + uniq('deep');
    const got = [];
    await cometdSubscribe(a, base + '/**', (m) => got.push(m.channel));
    for (const ch of [base + '/a', base + '/b/c', base, base + 'x/a', base + '/d/e/f',
        '/' + uniq('other'), base + '/zz']) {
        await cometdPublish(b, ch, 'x');
    }
    await until(() => got.includes(base + '/zz'), 5000, 'the last matching message');
    assert.deepEqual(got, [base + '/a', base + '/b/c', base + '/d/e/f', base + '/zz']);
});

test('cometd: unsubscribe stops delivery', opts(), async (t) => {
    const { cometd: a } = await ready(t);
    const { cometd: b } = await ready(t);
    const ch = '/' + uniq('unsub');
    const sentinel = ch + 'sentinel';
    const got = [];
    await cometdSubscribe(a, sentinel, (m) => got.push(m.data));
    const sub = await cometdSubscribe(a, ch, () => {});
    // What the server sent on the channel (a listener would not do: CometD
    // sends no /meta/unsubscribe while a listener remains on the channel).
    const seen = () => a.bxIncoming.filter((m) => m.channel === ch).map((m) => m.data);
    await cometdPublish(b, ch, 'before');
    await until(() => seen().length >= 1, 5000, 'the first message');
    await cometdUnsubscribe(a, sub);
    await cometdPublish(b, ch, 'after');
    await cometdPublish(b, sentinel, 'end');
    await until(() => got.includes('end'), 5000, 'the sentinel');
    assert.deepEqual(seen(), ['before']);
});

test('cometd: disconnect', opts(), async (t) => {
    const { cometd } = await ready(t);
    const clientId = cometd.getClientId();
    const cookie = `BAYEUX_BROWSER=${cometd.bxCookies.BAYEUX_BROWSER}`;
    const reply = await cometdDisconnect(cometd);
    assert.equal(reply.successful, true);
    assert.equal(cometd.getStatus(), 'disconnected');
    // The session is gone for good: the same clientId with the same cookie.
    const raw = rawClient(t, { name: 'after-disconnect' });
    raw.clientId = clientId;
    raw.disconnected = true;
    const { res, reply: r } = await raw.publish('/' + uniq('gone'), 'x', {}, { cookie });
    assert.equal(res.status, 200);
    assert.equal(r.successful, false);
    assert.match(r.error, /^402/);
});

test('cometd and faye talk to each other (both directions)', opts(), async (t) => {
    const { cometd } = await ready(t);
    const fc = newFaye(t);
    await fayeConnect(fc);
    const toFaye = '/' + uniq('tofaye');
    const toCometd = '/' + uniq('tocometd');
    const fayeGot = [];
    const cometdGot = [];
    await fayeSubscribe(fc, toFaye, (channel, data) => fayeGot.push({ channel, data }));
    await cometdSubscribe(cometd, toCometd, (m) => cometdGot.push(m));
    await cometdPublish(cometd, toFaye, { from: 'cometd', text: 'hi faye' });
    await fayePublish(fc, toCometd, { from: 'faye', text: 'hi cometd' });
    await until(() => fayeGot.length >= 1 && cometdGot.length >= 1, 8000, 'both messages');
    assert.deepEqual(fayeGot, [{ channel: toFaye, data: { from: 'cometd', text: 'hi faye' } }]);
    assert.equal(cometdGot.length, 1);
    assert.equal(cometdGot[0].channel, toCometd);
    assert.deepEqual(cometdGot[0].data, { from: 'faye', text: 'hi cometd' });
    // A reply the other way round, so each side also receives after sending.
    await fayePublish(fc, toCometd, { from: 'faye', text: 'second' });
    await cometdPublish(cometd, toFaye, { from: 'cometd', text: 'second' });
    await until(() => fayeGot.length >= 2 && cometdGot.length >= 2, 8000, 'both replies');
    assert.equal(fayeGot[1].data.text, 'second');
    assert.equal(cometdGot[1].data.text, 'second');
});

test('cometd: after 402 session_unknown it handshakes again and goes on', opts(30000),
    async (t) => {
        const a = newCometD(t);
        const b = newCometD(t);
        const ch = '/' + uniq('again');
        const got = [];
        const handshakes = [];
        let subscribed = 0;
        // The usual application pattern: (re)subscribe on every handshake, as
        // CometD drops its subscriptions when it handshakes again.
        a.addListener('/meta/handshake', (m) => {
            if (!m.successful) return;
            handshakes.push(m.clientId);
            a.subscribe(ch, (msg) => got.push(msg.data), (r) => {
                if (r.successful) subscribed += 1;
            });
        });
        const connected = cometdConnected(a);
        await cometdHandshake(a);
        await connected;
        await until(() => subscribed === 1, 5000, 'the first subscription');
        await cometdHandshake(b);
        // Another browser's cookie: the server no longer knows the session,
        // answers 402 with reconnect "handshake", and the client obeys.
        a.bxCookies.BAYEUX_BROWSER = uniq('bogus');
        await until(() => subscribed === 2, T2 + 8000, 'a new handshake and subscription');
        assert.equal(handshakes.length, 2);
        assert.notEqual(handshakes[1], handshakes[0], 'a new clientId');
        await cometdPublish(b, ch, 'after');
        await until(() => got.includes('after'), 5000, 'a message on the new session');
    });

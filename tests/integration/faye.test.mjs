// The stock Faye client (npm faye 1.4) against the server, long-polling.
import test from 'node:test';
import assert from 'node:assert/strict';

import {
    opts, uniq, until, sleep, TIMEOUT_MS, rawClient,
    newFaye, fayeConnect, fayeClientId, fayeCookie, fayeSubscribe, fayeUnsubscribe, fayePublish,
    fayeDisconnect,
} from './lib.mjs';

// A handshaken Faye client, wrapped: a Faye Client is a thenable, so an async
// function returning it bare would resolve to something else.
async function ready(t) {
    const client = newFaye(t);
    await fayeConnect(client);
    return { client };
}

test('faye: handshake through connect()', opts(), async (t) => {
    const client = newFaye(t);
    await fayeConnect(client);
    const id = fayeClientId(client);
    assert.match(id, /^[0-9a-z]{26,}$/);
    const hs = client.bxIncoming.find((m) => m.channel === '/meta/handshake');
    assert.equal(hs.successful, true);
    assert.equal(hs.version, '1.0');
    assert.ok(hs.supportedConnectionTypes.includes('long-polling'));
    assert.equal(client._dispatcher.connectionType, 'long-polling');
    // Faye follows the server's advice: seconds internally.
    assert.equal(client._advice.timeout, TIMEOUT_MS);
    // The first /meta/connect follows the handshake and succeeds.
    await until(() => client.bxIncoming.some((m) => m.channel === '/meta/connect'),
        5000, 'the first /meta/connect reply');
    const c = client.bxIncoming.find((m) => m.channel === '/meta/connect');
    assert.equal(c.successful, true);
});

test('faye: connect stays up across several hold timeouts', opts(), async (t) => {
    const { client } = await ready(t);
    let down = 0;
    client.on('transport:down', () => { down += 1; });
    const connects = () => client.bxIncoming.filter((m) => m.channel === '/meta/connect');
    await until(() => connects().length >= 3, TIMEOUT_MS * 3 + 3000, 'three connect replies');
    assert.ok(connects().every((m) => m.successful === true), 'every connect successful');
    assert.equal(down, 0, 'the transport never went down');
});

test('faye: subscribe', opts(), async (t) => {
    const { client } = await ready(t);
    const ch = '/' + uniq('sub');
    await fayeSubscribe(client, ch, () => {});
    const r = client.bxIncoming.find((m) => m.channel === '/meta/subscribe');
    assert.equal(r.successful, true);
    assert.deepEqual([].concat(r.subscription), [ch]);
});

test('faye: publish and receive', opts(), async (t) => {
    const { client: a } = await ready(t);
    const { client: b } = await ready(t);
    const ch = '/' + uniq('chat') + '/room';
    const got = [];
    await fayeSubscribe(a, ch, (channel, data) => got.push({ channel, data }));
    const data = { text: 'hello', n: 1, nested: { list: [1, 'two', null, true] }, u: 'é€😀' };
    await fayePublish(b, ch, data);
    await until(() => got.length >= 1, 5000, 'the delivery');
    assert.deepEqual(got, [{ channel: ch, data }]);
    const raw = a.bxIncoming.find((m) => m.channel === ch);
    assert.equal(raw.clientId, undefined, 'no clientId in a delivery');
    assert.equal(raw.id, undefined, 'no id in a delivery');
});

test('faye: a subscribed publisher receives its own message', opts(), async (t) => {
    const { client } = await ready(t);
    const ch = '/' + uniq('self');
    const got = [];
    await fayeSubscribe(client, ch, (channel, data) => got.push(data));
    await fayePublish(client, ch, 'me');
    await until(() => got.length >= 1, 5000, 'own message');
    assert.deepEqual(got, ['me']);
});

test('faye: 200 messages arrive in order', opts(40000), async (t) => {
    const { client: a } = await ready(t);
    const { client: b } = await ready(t);
    const ch = '/' + uniq('order');
    const got = [];
    await fayeSubscribe(a, ch, (channel, data) => got.push(data.n));
    // Faye may split one tick's messages over concurrent requests, so each
    // publish waits for the previous acknowledgement: the order is then fixed.
    for (let n = 0; n < 200; n += 1) {
        await fayePublish(b, ch, { n });
    }
    await until(() => got.length >= 200, 15000, '200 messages');
    await sleep(200);
    assert.equal(got.length, 200, 'exactly 200 messages');
    assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i));
});

test('faye: wildcard * receives one segment only', opts(), async (t) => {
    const { client: a } = await ready(t);
    const { client: b } = await ready(t);
    const base = '/' + uniq('wild');
    const got = [];
    await fayeSubscribe(a, base + '/*', (channel) => got.push(channel));
    for (const ch of [base + '/a', base + '/b/c', base, '/' + uniq('other') + '/a',
        base + 'x/a', base + '/zz']) {
        await fayePublish(b, ch, 'x');
    }
    await until(() => got.includes(base + '/zz'), 5000, 'the last matching message');
    assert.deepEqual(got, [base + '/a', base + '/zz']);
});

test('faye: wildcard ** receives every depth below', opts(), async (t) => {
    const { client: a } = await ready(t);
    const { client: b } = await ready(t);
    const base = '/' + uniq('deep');
    const got = [];
    await fayeSubscribe(a, base + '/**', (channel) => got.push(channel));
    for (const ch of [base + '/a', base + '/b/c', base, base + 'x/a', base + '/d/e/f',
        '/' + uniq('other'), base + '/zz']) {
        await fayePublish(b, ch, 'x');
    }
    await until(() => got.includes(base + '/zz'), 5000, 'the last matching message');
    assert.deepEqual(got, [base + '/a', base + '/b/c', base + '/d/e/f', base + '/zz']);
});

test('faye: unsubscribe stops delivery', opts(), async (t) => {
    const { client: a } = await ready(t);
    const { client: b } = await ready(t);
    const ch = '/' + uniq('unsub');
    const sentinel = ch + 'sentinel';
    const got = [];
    await fayeSubscribe(a, sentinel, (channel, data) => got.push(data));
    const { sub } = await fayeSubscribe(a, ch, () => {});
    await fayePublish(b, ch, 'before');
    await until(() => a.bxIncoming.some((m) => m.channel === ch), 5000, 'the first message');
    await fayeUnsubscribe(a, sub, ch);
    await fayePublish(b, ch, 'after');
    await fayePublish(b, sentinel, 'end');
    await until(() => got.includes('end'), 5000, 'the sentinel');
    // What the server sent, not what Faye's local listeners let through.
    const seen = a.bxIncoming.filter((m) => m.channel === ch).map((m) => m.data);
    assert.deepEqual(seen, ['before']);
});

test('faye: disconnect', opts(), async (t) => {
    const { client } = await ready(t);
    const clientId = fayeClientId(client);
    const cookie = fayeCookie(client);
    assert.match(cookie, /BAYEUX_BROWSER=[0-9A-Za-z]+/, 'Faye stored the browser cookie');
    await fayeDisconnect(client);
    const r = client.bxIncoming.find((m) => m.channel === '/meta/disconnect');
    assert.equal(r.successful, true);
    // The session is gone for good: the same clientId with the same cookie.
    const raw = rawClient(t, { name: 'after-disconnect' });
    raw.clientId = clientId;
    raw.disconnected = true;
    const { res, reply } = await raw.publish('/' + uniq('gone'), 'x', {}, { cookie });
    assert.equal(res.status, 200);
    assert.equal(reply.successful, false);
    assert.match(reply.error, /^402/);
});

test('faye: after 402 session_unknown it handshakes again and resubscribes', opts(30000),
    async (t) => {
        const { client: a } = await ready(t);
        const { client: b } = await ready(t);
        const ch = '/' + uniq('again');
        const got = [];
        await fayeSubscribe(a, ch, (channel, data) => got.push(data));
        const first = fayeClientId(a);
        // Another browser's cookie: the server no longer knows the session,
        // answers 402 with reconnect "handshake"; Faye handshakes again and
        // subscribes its channels again by itself.
        const jar = a._dispatcher.cookies;
        jar.setCookieSync(`BAYEUX_BROWSER=${uniq('bogus')}; Path=/`, a._dispatcher.endpoint.href);
        const resubscribed = () => a.bxIncoming.filter((m) => m.channel === '/meta/subscribe' &&
            m.successful === true).length >= 2;
        await until(resubscribed, TIMEOUT_MS * 2 + 8000, 'a new handshake and subscription');
        assert.notEqual(fayeClientId(a), first, 'a new clientId');
        await fayePublish(b, ch, 'after');
        await until(() => got.includes('after'), 5000, 'a message on the new session');
    });

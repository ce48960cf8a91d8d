// The demo page (contrib/demo) in headless Chromium: CometD with the ack and
// reload extensions, its log kept in sessionStorage and deduplicated by the
// room's ext.seq (the harness gives /chat/** a history). While a node CometD
// client streams numbered lines into the room, the page reloads again and
// again; in the end its log shows every line once, in order, and the page
// kept its session all along.
//
// Chromium is Debian's /usr/bin/chromium (BX_CHROMIUM to use another),
// driven by playwright-core; without it the test skips, saying so.
import fs from 'node:fs';
import test from 'node:test';
import assert from 'node:assert/strict';

import { chromium } from 'playwright-core';

import {
    BX_ORIGIN, nginxOpts, uniq, sleep, until,
    newCometD, cometdHandshake, cometdConnected, cometdPublish, sequenceOf,
} from './lib.mjs';

const CHROMIUM = process.env.BX_CHROMIUM || '/usr/bin/chromium';
const ROOM = '/chat/demo';      // the demo's room (contrib/demo/chat.js)

// Launches Chromium, closed by the test's after hook; null (and a skip)
// when there is none.
async function browser(t) {
    if (!fs.existsSync(CHROMIUM)) {
        t.skip(`no Chromium at ${CHROMIUM} (Debian package chromium, which ./quickstart ` +
            'installs; or set BX_CHROMIUM)');
        return null;
    }
    // Root (CI) cannot use Chromium's sandbox.
    const b = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    t.after(() => b.close());
    return b;
}

// The page's log: one { seq, user, text } per line shown.
function pageLog(page) {
    return page.evaluate(() => [...document.querySelectorAll('#log li')].map((li) => ({
        seq: li.dataset.seq === undefined ? null : Number(li.dataset.seq),
        user: li.querySelector('b') ? li.querySelector('b').textContent : '',
        text: li.querySelector('span') ? li.querySelector('span').textContent : li.textContent,
    })));
}

// Lets the page's /meta/connect requests through until a reply carries
// deliveries, then drops the next one (the acknowledgement of those).
async function loseAck(page) {
    let state = 'wait';         // -> 'drop' -> 'dropped'
    const handler = async (route) => {
        const body = route.request().postData() || '';
        if (!body.includes('"/meta/connect"')) return route.continue();
        if (state !== 'wait') {
            state = 'dropped';
            return route.abort();
        }
        const res = await route.fetch();
        const text = await res.text();
        let msgs = [];
        try {
            msgs = JSON.parse(text);
        } catch {
            // not ours to judge: passed on as it is
        }
        if (Array.isArray(msgs) && msgs.some((m) => m && m.successful === undefined)) {
            state = 'drop';
        }
        return route.fulfill({ response: res, body: text });
    };
    await page.route('**/cometd**', handler);
    try {
        await until(() => state === 'dropped', 10000, 'a dropped acknowledgement');
    } finally {
        await page.unroute('**/cometd**', handler);
    }
}

async function waitConnected(page) {
    await page.waitForSelector('#status[data-state="connected"]', { timeout: 15000 });
    return page.evaluate(() => window.chat.cometd.getClientId());
}

test('reload: the demo page shows every message once across reloads', nginxOpts(90000),
    async (t) => {
        const b = await browser(t);
        if (!b) return;
        const page = await b.newPage();
        const errors = [];
        page.on('pageerror', (e) => errors.push(String(e)));
        // The requests this test drops are not the page's errors.
        page.on('console', (m) => {
            if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
                errors.push(`console: ${m.text()}`);
            }
        });
        await page.goto(BX_ORIGIN + '/');
        const firstId = await waitConnected(page);
        assert.match(firstId, /^[0-9a-z]{26,}$/);

        const pub = newCometD(t);
        const connected = cometdConnected(pub);
        await cometdHandshake(pub);
        await connected;
        const tag = uniq('line');
        const N = 300;
        let sent = 0;
        const publishing = (async () => {
            for (let n = 0; n < N; n += 1) {
                await cometdPublish(pub, ROOM, { user: 'bot', text: `${tag} ${n}` });
                sent = n + 1;
                await sleep(15);
            }
        })();

        // Reload while the stream runs (at least 6 times), each after the
        // page has connected again; every reload must keep the session.
        // Every other reload loses the acknowledgement of what the page has
        // just shown: a connect reply with lines goes through, the connect
        // after it (which acknowledges them) is dropped, then the page
        // reloads. The server sends those lines again to the new page,
        // which must skip them.
        const ids = [firstId];
        let reloads = 0;
        let skipped = 0;
        while (reloads < 6 || sent < N) {
            await sleep(250 + Math.floor(Math.random() * 400));
            if (reloads % 2 === 1 && sent < N - 50) {
                await loseAck(page);
            }
            await page.reload({ waitUntil: 'load' });
            reloads += 1;
            ids.push(await waitConnected(page));
            await sleep(100);
            skipped += await page.evaluate(() => window.chat.stats.skipped);
            if (reloads >= 30) break;
        }
        await publishing;
        await sleep(200);
        skipped += await page.evaluate(() => window.chat.stats.skipped);

        // Until all lines are there (or 20 s: then the counts below say
        // what is missing).
        const mine = (entries) => entries.filter((l) => l.text.startsWith(tag + ' '));
        let log = [];
        for (const deadline = Date.now() + 20000; Date.now() < deadline;) {
            log = await pageLog(page);
            if (mine(log).length >= N) break;
            await sleep(200);
        }
        // Anything late (a duplicate) would come now.
        await sleep(500);
        log = mine(await pageLog(page));

        const nums = log.map((l) => Number(l.text.slice(tag.length + 1)));
        const { seen, dups, disorder } = sequenceOf(nums);
        const missing = [];
        for (let n = 0; n < N; n += 1) if (!seen.has(n)) missing.push(n);
        const sessions = new Set(ids);
        t.diagnostic(`reload: ${N} lines streamed over ${reloads} reloads; the page shows ` +
            `${nums.length}: missing ${missing.length}, twice ${dups.length}, ` +
            `out of order ${disorder}; ${skipped} redeliveries skipped by ext.seq; ` +
            `${sessions.size} clientId(s)`);
        assert.deepEqual(errors, [], 'no errors in the page');
        assert.deepEqual(missing, [], 'lines missing from the log');
        assert.deepEqual(dups, [], 'lines shown twice');
        assert.equal(disorder, 0, 'lines out of order');
        assert.ok(log.every((l) => Number.isInteger(l.seq)),
            'every line carries its ext.seq (the room has a history)');
        assert.deepEqual([...sessions], [firstId], 'the page kept its session across reloads');
        assert.ok(skipped > 0, 'the lost acknowledgements brought redeliveries');
    });

test('reload: the log survives a reload without new messages', nginxOpts(30000), async (t) => {
    const b = await browser(t);
    if (!b) return;
    const page = await b.newPage();
    await page.goto(BX_ORIGIN + '/');
    await waitConnected(page);
    const text = uniq('typed');
    await page.fill('#text', text);
    await page.click('#send');
    await page.waitForFunction((s) => [...document.querySelectorAll('#log li span')]
        .some((e) => e.textContent === s), text, { timeout: 10000 });
    const before = await pageLog(page);
    await page.reload({ waitUntil: 'load' });
    await waitConnected(page);
    // Nothing new arrived: the page shows what it showed.
    await sleep(300);
    const after = await pageLog(page);
    assert.deepEqual(after, before);
    assert.equal(after.filter((l) => l.text === text).length, 1, 'own line once');
});

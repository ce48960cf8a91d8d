// bench/chaos's checker: one subscriber's deliveries against what the
// publishers were answered, under the rules stated at the top of
// bench/chaos.mjs (and in bench/README.md). A subscriber here is
// { name, mode, got: [{ p, n, page, at }], sessions: [{ clientId, from, to }],
// events: [{ at, what }], sessionsLost, notes }; a publisher
// { name, rec: [{ sent, ans, ok }] } indexed by n; times from performance.now().

// The queue-bound lines bayeuxd logged, per clientId.
function queueBounded(log, clientId) {
    return log.split('\n').some((l) => l.includes(clientId) &&
        /queue|dropp|budget|overflow/i.test(l));
}

// What could have lost a reply or a queue between from and to (its name),
// or null: a fault to everyone first, then the client's own events.
function lossyBetween(events, s, from, to) {
    const all = events.find((e) => e.to >= from && e.from <= to);
    if (all) return all.what;
    const mine = s.events.find((e) => e.at >= from && e.at <= to);
    return mine ? mine.what : null;
}

// One subscriber against the publishers' records. end: when the run ended;
// dlog: bayeuxd's logs; events: the faults to everyone, [{ what, from, to }];
// t0: when the faults started (times in the report are from there).
export function check(s, pubs, { end, dlog, events, t0 }) {
    const r = { received: 0, expected: 0, lost: 0, allowedLost: 0, duplicated: 0,
        allowedDup: 0, reordered: 0, sessionsLost: s.sessionsLost, notes: [...s.notes],
        causes: {}, runs: [] };
    const ack = s.mode === 'cometd-ack';
    const bounded = s.sessions.some((x) => queueBounded(dlog, x.clientId));
    for (const pub of pubs) {
        const mine = s.got.filter((g) => g.p === pub.name);
        const firstPage = new Map();    // n -> page of its first delivery
        let max = -1;
        const arrivals = [];            // first deliveries: [n, at]
        for (const g of mine) {
            if (firstPage.has(g.n)) {
                r.duplicated += 1;
                if (ack && firstPage.get(g.n) < g.page) r.allowedDup += 1;
                else r.notes.push(`${pub.name} ${g.n} twice`);
                continue;
            }
            firstPage.set(g.n, g.page);
            arrivals.push([g.n, g.at]);
            r.received += 1;
            if (g.n < max) {
                r.reordered += 1;
                r.notes.push(`${pub.name} ${g.n} after ${max}`);
            }
            max = Math.max(max, g.n);
        }
        arrivals.sort((a, b) => a[0] - b[0]);
        pub.rec.forEach((rec, n) => {
            if (!rec.ok) return;
            const within = s.sessions.some((x) => rec.sent >= x.from && rec.ans <= x.to);
            if (!within) return;
            r.expected += 1;
            if (firstPage.has(n)) return;
            r.lost += 1;
            // The deliveries either side of the gap.
            let before = null;
            let after = null;
            for (const [m, at] of arrivals) {
                if (m < n) before = at;
                else if (m > n) {
                    after = at;
                    break;
                }
            }
            const from = before === null ? rec.sent : Math.min(before, rec.sent);
            const to = after === null ? end : after;
            const cause = bounded ? 'queue bound' : !ack && lossyBetween(events, s, from, to);
            if (cause) {
                r.allowedLost += 1;
                r.causes[cause] = (r.causes[cause] || 0) + 1;
                // Runs of consecutive losses, for the report.
                const run = r.runs[r.runs.length - 1];
                if (run && run.p === pub.name && run.to === n - 1 && run.cause === cause) {
                    run.to = n;
                } else {
                    r.runs.push({ p: pub.name, from: n, to: n, cause,
                        at: ((rec.sent - t0) / 1000).toFixed(1) });
                }
            } else if (r.notes.length < 50) {
                r.notes.push(`${pub.name} ${n} lost`);
            }
        });
    }
    r.violations = (r.lost - r.allowedLost) + (r.duplicated - r.allowedDup) + r.reordered +
        r.sessionsLost;
    return r;
}

export function missing(s, pubs) {
    let n = 0;
    for (const pub of pubs) {
        const have = new Set(s.got.filter((g) => g.p === pub.name).map((g) => g.n));
        pub.rec.forEach((rec, i) => {
            if (rec.ok && !have.has(i) &&
                s.sessions.some((x) => rec.sent >= x.from && rec.ans <= x.to)) n += 1;
        });
    }
    return n;
}

// CHAOS_INJECT=1 (bench/chaos --inject): proves the checker can fail. The
// first ack subscriber's record loses one delivery of the first stream, gets
// another one twice on the same page, and two more swapped: the report must
// show 1 lost, 1 duplicated and 1 reordered more, as violations.
export function inject(s, pub) {
    const mine = s.got.map((g, i) => [g, i]).filter(([g]) => g.p === pub.name);
    if (mine.length < 40) return 'nothing injected: too few deliveries';
    const at = (k) => mine[Math.floor(mine.length * k)][1];
    const k = Math.floor(mine.length * 0.5);
    const [a, b] = [mine[k][1], mine[k + 1][1]];
    [s.got[a], s.got[b]] = [s.got[b], s.got[a]];
    s.got.splice(at(0.75) + 1, 0, { ...s.got[at(0.75)] });
    s.got.splice(at(0.25), 1);
    return `injected into ${s.name}: one delivery of ${pub.name} removed, one doubled, ` +
        'two swapped';
}

export function table(rows) {
    const cols = ['mode', 'received', 'expected', 'lost', 'allowed-lost', 'duplicated',
        'allowed-dup', 'reordered', 'sessions-lost', 'violations'];
    const w = cols.map((c) => Math.max(c.length, ...rows.map((x) => String(x[c]).length)));
    const line = (x) => '| ' + cols.map((c, i) => String(x[c]).padStart(w[i])).join(' | ') +
        ' |';
    return [line(Object.fromEntries(cols.map((c) => [c, c]))),
        '|' + w.map((n) => '-'.repeat(n + 1) + ':').join('|') + '|',
        ...rows.map(line)];
}

// The demo chat: the stock CometD client, long-polling to /cometd on the
// page's own origin. Everyone in the room talks on one channel:
//   {user, text}   a chat line
//   {user, join}   someone arrived; everyone present answers {user, here}
//
// Nothing is lost and nothing is shown twice, even across reloads:
// - the ack extension has the server send again whatever a lost reply
//   carried, until the page has acknowledged it;
// - the reload extension keeps the same session when the page reloads
//   (cometd.reload() on pagehide; its state lives in sessionStorage);
// - the room is a history channel on the server (bayeuxd's history option,
//   e.g. history = "/chat/** 1000"), so every message carries its number
//   ext.seq: the page skips a number it has shown already, and after losing
//   its session (the server forgot it, the laptop slept) it subscribes with
//   ext.replay = the last number shown and gets what it missed;
// - what the page shows is kept in sessionStorage, so a reload shows the
//   same log.
// Without history on the server the chat still works; a line redelivered
// after a reload may then show twice.
import { CometD, AckExtension, ReloadExtension } from './js/cometd/cometd.js';

const ROOM = '/chat/demo';
const KEEP = 500;               // lines kept across reloads
const STORE = 'chat.state';     // sessionStorage key of the state below
const $ = (id) => document.getElementById(id);

// What survives a reload: the lines shown ({seq, user, text, cls}), the
// last ext.seq shown (null: none yet), the members seen, whether this tab
// announced itself.
const state = loadState();
// Since this page loaded: deliveries skipped as already shown.
const stats = { skipped: 0 };

function loadState() {
    try {
        const s = JSON.parse(sessionStorage.getItem(STORE));
        if (s && Array.isArray(s.lines) && Array.isArray(s.members)) {
            return s;
        }
    } catch {
        // unreadable: start afresh
    }
    return { lines: [], lastSeq: null, members: [], joined: false };
}

// Called after every change, before the next /meta/connect acknowledges the
// message: a reload at any moment finds everything that was shown.
function saveState() {
    if (state.lines.length > KEEP) {
        state.lines.splice(0, state.lines.length - KEEP);
    }
    try {
        sessionStorage.setItem(STORE, JSON.stringify(state));
    } catch {
        // storage full or disabled: the page still works, reloads forget
    }
}

const nameField = $('name');
nameField.value = sessionStorage.getItem('chat.name') ||
    'guest-' + Math.random().toString(36).slice(2, 6);
sessionStorage.setItem('chat.name', nameField.value);
nameField.addEventListener('change', () => sessionStorage.setItem('chat.name', me()));

function me() {
    return nameField.value.trim() || 'anonymous';
}

function setStatus(status, text) {
    const el = $('status');
    el.dataset.state = status;
    el.textContent = text;
    $('send').disabled = status !== 'connected';
}

function renderLine(line) {
    const log = $('log');
    const li = document.createElement('li');
    if (line.cls) {
        li.className = line.cls;
    }
    if (line.seq !== null) {
        li.dataset.seq = line.seq;
    }
    const who = document.createElement('b');
    who.textContent = line.user;
    const what = document.createElement('span');
    what.textContent = line.text;
    li.append(who, what);
    log.append(li);
    while (log.children.length > KEEP) {
        log.firstElementChild.remove();
    }
    log.scrollTop = log.scrollHeight;
}

function addLine(seq, user, text, cls) {
    const line = { seq, user, text, cls: cls || '' };
    state.lines.push(line);
    renderLine(line);
}

function renderMember(user) {
    const li = document.createElement('li');
    li.textContent = user;
    $('members').append(li);
}

function addMember(user) {
    if (typeof user !== 'string' || state.members.includes(user)) {
        return;
    }
    state.members.push(user);
    renderMember(user);
}

function onMessage(message) {
    const seq = message.ext && Number.isInteger(message.ext.seq) ? message.ext.seq : null;
    if (seq !== null) {
        // Numbers grow in delivery order: one not above the last shown is a
        // redelivery (a reply lost in a reload) or a replay we already had.
        if (state.lastSeq !== null && seq <= state.lastSeq) {
            stats.skipped += 1;
            return;
        }
        state.lastSeq = seq;
    }
    const data = message.data || {};
    addMember(data.user);
    if (data.join) {
        addLine(seq, data.user, 'joined', 'join');
        if (data.user !== me()) {
            cometd.publish(ROOM, { user: me(), here: true });
        }
    } else if (typeof data.text === 'string') {
        addLine(seq, data.user, data.text);
    }
    saveState();
}

// The reply to a subscribe with ext.replay: {"/chat/demo": {last, missed}}.
function onSubscribed(reply) {
    const info = reply.successful && reply.ext && reply.ext.replay && reply.ext.replay[ROOM];
    if (!info) {
        return;
    }
    if (info.missed > 0) {
        addLine(null, '', `${info.missed} earlier message(s) are no longer available`, 'join');
    }
    if (Number.isInteger(info.last) && state.lastSeq !== null && info.last < state.lastSeq) {
        // The server's numbering started again (its history was lost):
        // take numbers from there.
        state.lastSeq = info.last;
    }
    saveState();
}

for (const line of state.lines) {
    renderLine(line);
}
for (const user of state.members) {
    renderMember(user);
}

const cometd = new CometD();
// The server speaks HTTP long-polling and callback-polling, not WebSocket.
cometd.unregisterTransport('websocket');
cometd.registerExtension('ack', new AckExtension());
cometd.registerExtension('reload', new ReloadExtension());
cometd.configure({ url: location.origin + '/cometd', logLevel: 'warn' });

cometd.addListener('/meta/handshake', (reply) => {
    if (!reply.successful) {
        setStatus('disconnected', 'Handshake failed, retrying\u2026');
        return;
    }
    // Every handshake clears the client's subscriptions: subscribe again.
    // After a reload the session (and its subscription) lives on in the
    // server and re-subscribing changes nothing. A real handshake is a new
    // session: ask for what the room said since the last line shown.
    const reloaded = reply.ext && reply.ext.reload;
    const props = !reloaded && state.lastSeq !== null ? { ext: { replay: state.lastSeq } } : {};
    addMember(me());
    cometd.batch(() => {
        cometd.subscribe(ROOM, onMessage, props, onSubscribed);
        if (!state.joined) {
            state.joined = true;
            cometd.publish(ROOM, { user: me(), join: true });
        }
    });
    saveState();
});

cometd.addListener('/meta/connect', (reply) => {
    if (cometd.isDisconnected()) {
        setStatus('disconnected', 'Disconnected');
    } else if (reply.successful) {
        setStatus('connected', 'Connected as ' + cometd.getClientId());
    } else {
        setStatus('connecting', 'Connection lost, retrying\u2026');
    }
});

$('say').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = $('text').value.trim();
    if (text) {
        cometd.publish(ROOM, { user: me(), text });
        $('text').value = '';
    }
    $('text').focus();
});

// Keep the session across a reload instead of handshaking again.
window.addEventListener('pagehide', () => cometd.reload());
// A page restored from the back-forward cache had its connection stopped by
// reload(): load it afresh, which resumes the session.
window.addEventListener('pageshow', (event) => {
    if (event.persisted) {
        location.reload();
    }
});

// For the browser tests and the console.
window.chat = { cometd, state, stats };

cometd.handshake();

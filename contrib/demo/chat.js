// The demo chat: the stock CometD client, long-polling to /cometd on the
// page's own origin. Everyone in the room talks on one channel:
//   {user, text}   a chat line
//   {user, join}   someone arrived; everyone present answers {user, here}
// The ack extension makes delivery reliable across reconnects, and the
// reload extension keeps the same session when the page reloads.
import { CometD, AckExtension, ReloadExtension } from './js/cometd/cometd.js';

const ROOM = '/chat/demo';
const $ = (id) => document.getElementById(id);
const members = new Set();

const nameField = $('name');
nameField.value = sessionStorage.getItem('chat.name') ||
    'guest-' + Math.random().toString(36).slice(2, 6);
nameField.addEventListener('change', () => sessionStorage.setItem('chat.name', me()));

function me() {
    return nameField.value.trim() || 'anonymous';
}

function setStatus(state, text) {
    const status = $('status');
    status.dataset.state = state;
    status.textContent = text;
    $('send').disabled = state !== 'connected';
}

function addLine(user, text, cls) {
    const log = $('log');
    const li = document.createElement('li');
    if (cls) {
        li.className = cls;
    }
    const who = document.createElement('b');
    who.textContent = user;
    li.append(who, text);
    log.append(li);
    log.scrollTop = log.scrollHeight;
}

function addMember(user) {
    if (typeof user !== 'string' || members.has(user)) {
        return;
    }
    members.add(user);
    const li = document.createElement('li');
    li.textContent = user;
    $('members').append(li);
}

function onMessage(message) {
    const data = message.data || {};
    addMember(data.user);
    if (data.join) {
        addLine(data.user, 'joined', 'join');
        if (data.user !== me()) {
            cometd.publish(ROOM, { user: me(), here: true });
        }
    } else if (typeof data.text === 'string') {
        addLine(data.user, data.text);
    }
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
    const reloaded = reply.ext && reply.ext.reload;
    addMember(me());
    cometd.batch(() => {
        cometd.subscribe(ROOM, onMessage);
        if (!reloaded) {
            cometd.publish(ROOM, { user: me(), join: true });
        }
    });
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

// For the browser tests and the console.
window.chat = { cometd, members };

cometd.handshake();

// bench/faye-server.js: Faye 1.4 on Node, as bench/compare runs it.
//
//   node bench/faye-server.js --port PORT [--mount /cometd] [--timeout 20]
//
// The stock NodeAdapter with its defaults, on 127.0.0.1, mounted where
// bayeux-fcgi is and with the same long-poll timeout (seconds, as Faye counts
// it; bayeuxd's default is 20,000 ms). No extensions, no engine options: the
// in-memory engine, which is Faye's fastest. Prints "listening" when ready
// and stops on SIGTERM or SIGINT.
'use strict';
const http = require('http');
const faye = require('faye');

const args = { port: 0, mount: '/cometd', timeout: 20 };
for (let i = 2; i < process.argv.length; i += 2) {
    const k = process.argv[i].replace(/^--/, ''), v = process.argv[i + 1];
    if (!(k in args) || v === undefined) {
        console.error('usage: faye-server.js --port PORT [--mount /cometd] [--timeout 20]');
        process.exit(2);
    }
    args[k] = k === 'mount' ? v : Number(v);
}

const bayeux = new faye.NodeAdapter({ mount: args.mount, timeout: args.timeout });
const server = http.createServer();
bayeux.attach(server);
server.listen(args.port, '127.0.0.1', () => console.log('listening'));
for (const sig of ['SIGTERM', 'SIGINT'])
    process.on(sig, () => process.exit(0));

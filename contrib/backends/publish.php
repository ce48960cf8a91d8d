<?php
// publish.php - publishes one message through bayeuxd's app endpoint, from
// PHP with the zmq extension (Debian: php-zmq). See docs/backend.md.
//
//   php publish.php [CHANNEL [JSON [ENDPOINT]]]
//   php publish.php /chat/room '{"user":"php","text":"hi"}'
//
// ENDPOINT defaults to $BAYEUX_APP, then ipc:///tmp/bayeux-fcgi/app.sock.
// Exit status as bayeuxctl's: 0 published, 1 refused, 2 bad JSON, 3 no reply.

$channel = $argv[1] ?? '/chat/room';
$data = json_decode($argv[2] ?? '{"user":"php","text":"hello"}');
if (json_last_error() !== JSON_ERROR_NONE) {
    fwrite(STDERR, "publish.php: not JSON: " . json_last_error_msg() . "\n");
    exit(2);
}
$endpoint = $argv[3] ?? (getenv('BAYEUX_APP') ?: 'ipc:///tmp/bayeux-fcgi/app.sock');

$req = (new ZMQContext())->getSocket(ZMQ::SOCKET_REQ);
$req->setSockOpt(ZMQ::SOCKOPT_LINGER, 0);   // do not wait for an absent bayeuxd at exit
$req->connect($endpoint);
$req->send(json_encode(['op' => 'publish', 'channel' => $channel, 'data' => $data],
                       JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE));

// Wait at most 5 s for the reply: bayeuxd may not be running.
$poll = new ZMQPoll();
$poll->add($req, ZMQ::POLL_IN);
$readable = $writable = [];
if ($poll->poll($readable, $writable, 5000) === 0) {
    fwrite(STDERR, "publish.php: no reply from $endpoint\n");
    exit(3);
}
$reply = json_decode($req->recv(), true);
if (empty($reply['ok'])) {
    fwrite(STDERR, "publish.php: {$reply['error']}: {$reply['message']}\n");
    exit(1);
}
echo "published to $channel, reached {$reply['reached']} session(s)\n";

<?php
// Drives a memcached-compatible server with PHP's memcached extension (Debian php-memcached,
// on libmemcached).
//
// Usage: php php_check.php HOST PORT text|binary
//
// Prints a transcript, one line per operation: its result and the extension's result code
// (CAS values left out), which the caller compares between memcached and the server under
// test. The asserts catch results that would be wrong on any server.

$host = $argv[1];
$port = (int)$argv[2];
$mode = $argv[3];

$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, $mode === 'binary');
$m->setOption(Memcached::OPT_COMPRESSION, false);
$m->setOption(Memcached::OPT_CONNECT_TIMEOUT, 5000);
$m->setOption(Memcached::OPT_RECV_TIMEOUT, 10000000);
$m->setOption(Memcached::OPT_SEND_TIMEOUT, 10000000);
$m->addServer($host, $port);

$out = [];
function logop(&$out, $m, $op, $result) {
    $out[] = $op . ': ' . var_export($result, true) . ' (' . $m->getResultCode() . ')';
    return $result;
}
function check($cond, $what) {
    if (!$cond) {
        fwrite(STDERR, "check failed: $what\n");
        exit(1);
    }
}

$stats = $m->getStats();
$s = reset($stats);
$out[] = 'stats version: ' . var_export($s['version'] ?? null, true);
$out[] = 'getVersion: ' . var_export(array_values($m->getVersion()), true);

logop($out, $m, 'flush', $m->flush());
check(logop($out, $m, 'set a', $m->set('a', 'hello')) === true, 'set a');
check(logop($out, $m, 'get a', $m->get('a')) === 'hello', 'get a');
check(logop($out, $m, 'get missing', $m->get('missing')) === false, 'get missing');
logop($out, $m, 'set b int', $m->set('b', 42));
logop($out, $m, 'get b', $m->get('b'));
logop($out, $m, 'add a', $m->add('a', 'x'));
logop($out, $m, 'add c', $m->add('c', 'new'));
logop($out, $m, 'replace missing', $m->replace('missing', 'x'));
logop($out, $m, 'replace c', $m->replace('c', 'NEW'));
logop($out, $m, 'append c', $m->append('c', '!'));
logop($out, $m, 'prepend c', $m->prepend('c', '<'));
logop($out, $m, 'append missing', $m->append('missing', 'x'));
check(logop($out, $m, 'get c', $m->get('c')) === '<NEW!', 'get c');
$multi = $m->getMulti(['a', 'b', 'c', 'missing']);
ksort($multi);
logop($out, $m, 'getMulti', $multi);
logop($out, $m, 'setMulti', $m->setMulti(['m1' => '1', 'm2' => '2']));
$multi = $m->getMulti(['m1', 'm2']);
ksort($multi);
logop($out, $m, 'getMulti m', $multi);
logop($out, $m, 'deleteMulti', $m->deleteMulti(['m1', 'm2', 'missing']));

$r = $m->get('a', null, Memcached::GET_EXTENDED);
logop($out, $m, 'get extended value', $r['value']);
check(isset($r['cas']) && $r['cas'] != 0, 'get extended returns a CAS');
$cas = $r['cas'];
check(logop($out, $m, 'cas a', $m->cas($cas, 'a', 'v2')) === true, 'cas a');
logop($out, $m, 'cas a stale', $m->cas($cas, 'a', 'v3'));
logop($out, $m, 'cas missing', $m->cas($cas, 'missing', 'x'));
logop($out, $m, 'get a after cas', $m->get('a'));

logop($out, $m, 'set n', $m->set('n', '10'));
check(logop($out, $m, 'increment n', $m->increment('n', 5)) === 15, 'increment');
logop($out, $m, 'decrement n', $m->decrement('n', 20));
logop($out, $m, 'increment n big', $m->increment('n', PHP_INT_MAX));
logop($out, $m, 'increment n wrap', $m->increment('n', PHP_INT_MAX));
logop($out, $m, 'increment missing', $m->increment('missing', 1));
logop($out, $m, 'decrement missing', $m->decrement('missing', 1));
logop($out, $m, 'increment non-numeric', $m->increment('a', 1));

logop($out, $m, 'touch a', $m->touch('a', 1000));
logop($out, $m, 'touch missing', $m->touch('missing', 1000));
logop($out, $m, 'delete a', $m->delete('a'));
logop($out, $m, 'delete a again', $m->delete('a'));
logop($out, $m, 'get a deleted', $m->get('a'));

$big = '';
for ($i = 0; $i < 1536 * 1024; $i++) {
    $big .= chr($i % 251);
}
logop($out, $m, 'set big', $m->set('big', $big));
$got = $m->get('big');
logop($out, $m, 'get big equal', $got === $big);
check($got === $big, 'the 1.5 MB value came back intact');
logop($out, $m, 'set huge', $m->set('huge', str_repeat('h', 3 * 1024 * 1024)));
logop($out, $m, 'get huge', $m->get('huge'));
logop($out, $m, 'get big after huge', $m->get('big') === $big);

$long = str_repeat('k', 250);
logop($out, $m, 'set key 250', $m->set($long, 'v'));
logop($out, $m, 'get key 250', $m->get($long));

logop($out, $m, 'flush', $m->flush());
logop($out, $m, 'get c after flush', $m->get('c'));
logop($out, $m, 'getMulti after flush', $m->getMulti(['b', 'c', 'big']));

echo implode("\n", $out), "\n";
echo "php-memcached $mode: done\n";

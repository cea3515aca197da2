#!/usr/bin/perl
# Drives a memcached-compatible server with Perl's Cache::Memcached::Fast (Debian
# libcache-memcached-fast-perl, its own C protocol code).
#
# Usage: perl perl_check.pl HOST PORT
#
# Prints a transcript, one line per operation and its result (CAS values left out), which the
# caller compares between memcached and the server under test. The dies catch results that
# would be wrong on any server.
use strict;
use warnings;
use Cache::Memcached::Fast;

my ($host, $port) = @ARGV;
my $m = Cache::Memcached::Fast->new({
    servers => ["$host:$port"],
    connect_timeout => 5,
    io_timeout => 10,
    close_on_error => 0,
    max_size => 4 * 1024 * 1024,
    compress_threshold => -1,
});

my @out;
sub show {
    my ($v) = @_;
    return 'undef' unless defined $v;
    if (ref $v eq 'HASH') {
        return '{' . join(', ', map { "$_=" . show($v->{$_}) } sort keys %$v) . '}';
    }
    if (ref $v eq 'ARRAY') {
        return '[' . join(', ', map { show($_) } @$v) . ']';
    }
    return "'$v'";
}
sub logop { my ($op, $v) = @_; push @out, "$op: " . show($v); return $v; }
sub check { my ($c, $what) = @_; die "check failed: $what\n" unless $c; }

my $versions = $m->server_versions;
logop('server_versions', [values %$versions]);
logop('flush_all', [values %{$m->flush_all}]);
check(logop('set a', $m->set('a', 'hello')), 'set a');
check((logop('get a', $m->get('a')) // '') eq 'hello', 'get a');
check(!defined logop('get missing', $m->get('missing')), 'get missing');
logop('add a', $m->add('a', 'x'));
logop('add c', $m->add('c', 'new'));
logop('replace missing', $m->replace('missing', 'x'));
logop('replace c', $m->replace('c', 'NEW'));
logop('append c', $m->append('c', '!'));
logop('prepend c', $m->prepend('c', '<'));
logop('append missing', $m->append('missing', 'x'));
check((logop('get c', $m->get('c')) // '') eq '<NEW!', 'get c');
logop('get_multi', $m->get_multi('a', 'c', 'missing'));
logop('set_multi', [$m->set_multi(['m1', '1'], ['m2', '2'])]);
logop('get_multi m', $m->get_multi('m1', 'm2'));
logop('delete_multi', [$m->delete_multi('m1', 'm2', 'missing')]);

my $g = $m->gets('a');
check(ref $g eq 'ARRAY' && $g->[0], 'gets returns a CAS');
logop('gets a value', $g->[1]);
check(logop('cas a', $m->cas('a', $g->[0], 'v2')), 'cas a');
logop('cas a stale', $m->cas('a', $g->[0], 'v3'));
logop('cas missing', $m->cas('missing', $g->[0], 'x'));
logop('get a after cas', $m->get('a'));
my $gm = $m->gets_multi('a', 'c');
logop('gets_multi values', { map { $_ => $gm->{$_}[1] } keys %$gm });

logop('set n', $m->set('n', '10'));
check((logop('incr n', $m->incr('n', 5)) // 0) == 15, 'incr');
logop('decr n', $m->decr('n', 20));
logop('incr n big', $m->incr('n', '18446744073709551615'));
logop('incr n wrap', $m->incr('n', 2));
logop('incr missing', $m->incr('missing', 1));
logop('decr missing', $m->decr('missing', 1));
logop('incr non-numeric', $m->incr('a', 1));

logop('touch a', $m->touch('a', 1000));
logop('touch missing', $m->touch('missing', 1000));
logop('gat a', $m->gat(1000, 'a'));
logop('gats a value', ($m->gats(1000, 'a') // [])->[1]);
logop('delete a', $m->delete('a'));
logop('delete a again', $m->delete('a'));
logop('get a deleted', $m->get('a'));

my $big = join('', map { chr($_ % 251) } 0 .. 1536 * 1024 - 1);
logop('set big', $m->set('big', $big));
my $got = $m->get('big');
logop('get big equal', (defined $got && $got eq $big) ? 1 : 0);
check(defined $got && $got eq $big, 'the 1.5 MB value came back intact');
logop('set huge', $m->set('huge', 'h' x (3 * 1024 * 1024)));
logop('get huge', $m->get('huge'));
logop('get big after huge', ($m->get('big') // '') eq $big ? 1 : 0);

my $long = 'k' x 250;
logop('set key 250', $m->set($long, 'v'));
logop('get key 250', $m->get($long));

logop('flush_all', [values %{$m->flush_all}]);
logop('get c after flush', $m->get('c'));
logop('get_multi after flush', $m->get_multi('c', 'big'));

print join("\n", @out), "\n";
print "Cache::Memcached::Fast: done\n";

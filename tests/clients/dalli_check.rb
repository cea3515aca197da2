# Drives a memcached-compatible server with Ruby's Dalli 3.0 (Debian ruby-dalli), which speaks
# only memcached's binary protocol.
#
# Usage: ruby dalli_check.rb HOST PORT
#
# Prints a transcript, one line per operation and its result (CAS values left out), which the
# caller compares between memcached and the server under test. The checks catch results that
# would be wrong on any server.
require 'dalli'
require 'logger'

Dalli.logger = Logger.new(nil)
host, port = ARGV[0], ARGV[1]
dc = Dalli::Client.new("#{host}:#{port}",
                       socket_timeout: 10, socket_max_failures: 0, compress: false,
                       value_max_bytes: 4 * 1024 * 1024, serializer: Marshal)
out = []

def result(v)
  case v
  when Hash then v.keys.sort.map { |k| [k, result(v[k])] }.inspect
  when String then v.bytesize > 64 ? "string(#{v.bytesize})" : v.inspect
  else v.inspect
  end
end

log = lambda do |op, &blk|
  r = begin
    blk.call
  rescue Dalli::DalliError => e
    "raised #{e.class}"
  end
  # Storage commands return the new CAS value, which is each server's own.
  shown = if op =~ /\A(set|add|replace|cas)/ && r.is_a?(Integer) && r != 0
            'a CAS value'
          else
            result(r)
          end
  out << "#{op}: #{shown}"
  r
end

def check(cond, what)
  return if cond
  warn "check failed: #{what}"
  exit 1
end

log.call('version') { dc.version.values }
log.call('flush') { dc.flush }
check(log.call('set a') { dc.set('a', 'hello', 0, raw: true) }, 'set a')
check(log.call('get a') { dc.get('a') } == 'hello', 'get a')
check(log.call('get missing') { dc.get('missing') }.nil?, 'get missing')
log.call('set b object') { dc.set('b', { 'x' => 1 }) }
log.call('get b') { dc.get('b') }
log.call('add a') { dc.add('a', 'x', 0, raw: true) }
log.call('add c') { dc.add('c', 'new', 0, raw: true) }
log.call('replace missing') { dc.replace('missing', 'x', 0, raw: true) }
log.call('replace c') { dc.replace('c', 'NEW', 0, raw: true) }
log.call('append c') { dc.append('c', '!') }
log.call('prepend c') { dc.prepend('c', '<') }
log.call('append missing') { dc.append('missing', 'x') }
check(log.call('get c') { dc.get('c') } == '<NEW!', 'get c')
log.call('get_multi') { dc.get_multi('a', 'b', 'c', 'missing') }

value, cas = dc.get_cas('a')
out << "get_cas a value: #{value.inspect}"
check(cas && cas != 0, 'get_cas returns a CAS')
check(log.call('set_cas a') { dc.set_cas('a', 'v2', cas, 0, raw: true) }, 'set_cas a')
log.call('set_cas a stale') { dc.set_cas('a', 'v3', cas, 0, raw: true) }
log.call('set_cas missing') { dc.set_cas('missing', 'x', cas, 0, raw: true) }
log.call('cas block') { dc.cas('a', 0, raw: true) { |v| v + '+' } }
log.call('cas block missing') { dc.cas('missing', 0, raw: true) { |v| v + '+' } }
log.call('get a after cas') { dc.get('a') }
log.call('delete_cas a stale') { dc.delete_cas('a', cas) }

log.call('set n') { dc.set('n', '10', 0, raw: true) }
check(log.call('incr n') { dc.incr('n', 5) } == 15, 'incr')
log.call('decr n') { dc.decr('n', 20) }
log.call('incr n big') { dc.incr('n', 2**64 - 1) }
log.call('incr n wrap') { dc.incr('n', 2) }
log.call('incr missing') { dc.incr('missing', 1) }
log.call('decr missing') { dc.decr('missing', 1) }
log.call('incr missing default') { dc.incr('counter', 1, 0, 7) }
log.call('incr counter') { dc.incr('counter', 1, 0, 7) }
log.call('incr non-numeric') { dc.incr('a', 1) }

log.call('touch a') { dc.touch('a', 1000) }
log.call('touch missing') { dc.touch('missing', 1000) }
log.call('gat a') { dc.gat('a', 1000) }
log.call('delete a') { dc.delete('a') }
log.call('delete a again') { dc.delete('a') }
log.call('get a deleted') { dc.get('a') }

big = (0...1536 * 1024).map { |i| (i % 251).chr }.join.b
log.call('set big') { dc.set('big', big, 0, raw: true) }
got = dc.get('big')
out << "get big equal: #{got == big}"
check(got == big, 'the 1.5 MB value came back intact')
log.call('set huge') { dc.set('huge', 'h' * (3 * 1024 * 1024), 0, raw: true) }
log.call('get huge') { dc.get('huge') }

long_key = 'k' * 250
log.call('set key 250') { dc.set(long_key, 'v', 0, raw: true) }
log.call('get key 250') { dc.get(long_key) }

log.call('flush') { dc.flush }
log.call('get c after flush') { dc.get('c') }
log.call('get_multi after flush') { dc.get_multi('b', 'c', 'big') }

puts out
puts 'dalli: done'

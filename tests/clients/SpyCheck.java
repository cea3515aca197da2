// Drives a memcached-compatible server with spymemcached (Debian libspymemcached-java).
//
// Usage: java -cp DIR:spymemcached.jar SpyCheck HOST PORT text|binary
//
// Prints a transcript, one line per operation and its result (CAS values left out), which the
// caller compares between memcached and the server under test. The checks catch results that
// would be wrong on any server.

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import net.spy.memcached.CASResponse;
import net.spy.memcached.CASValue;
import net.spy.memcached.ConnectionFactoryBuilder;
import net.spy.memcached.FailureMode;
import net.spy.memcached.MemcachedClient;
import net.spy.memcached.transcoders.SerializingTranscoder;

public class SpyCheck {
    static final List<String> out = new ArrayList<>();

    static Object log(String op, Callable<Object> f) {
        Object r;
        try {
            r = f.call();
        } catch (Exception e) {
            Throwable c = e;
            while (c.getCause() != null) {
                c = c.getCause();
            }
            r = "raised " + c.getClass().getSimpleName();
        }
        if (r instanceof byte[]) {
            r = "byte[" + ((byte[]) r).length + "]";
        }
        if (r instanceof Map) {
            r = new TreeMap<Object, Object>((Map<?, ?>) r);
        }
        out.add(op + ": " + r);
        return r;
    }

    static void check(boolean c, String what) {
        if (!c) {
            System.err.println("check failed: " + what);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        // spymemcached logs to stderr through java.util.logging by default; keep it quiet.
        System.setProperty("net.spy.log.LoggerImpl", "net.spy.memcached.compat.log.SunLogger");
        java.util.logging.Logger.getLogger("net.spy.memcached").setLevel(java.util.logging.Level.WARNING);
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        boolean binary = args[2].equals("binary");
        // No compression: the large values must cross the wire at full size.
        SerializingTranscoder transcoder = new SerializingTranscoder();
        transcoder.setCompressionThreshold(Integer.MAX_VALUE);
        ConnectionFactoryBuilder b = new ConnectionFactoryBuilder()
            .setProtocol(binary ? ConnectionFactoryBuilder.Protocol.BINARY
                                : ConnectionFactoryBuilder.Protocol.TEXT)
            .setOpTimeout(10000)
            .setFailureMode(FailureMode.Retry)
            .setTranscoder(transcoder);
        MemcachedClient mc = new MemcachedClient(b.build(),
            Arrays.asList(new InetSocketAddress(host, port)));
        try {
            run(mc);
        } finally {
            mc.shutdown(5, TimeUnit.SECONDS);
        }
        for (String l : out) {
            System.out.println(l);
        }
        System.out.println("spymemcached " + args[2] + ": done");
        System.exit(0);
    }

    static void run(MemcachedClient mc) throws Exception {
        log("versions", () -> new ArrayList<>(mc.getVersions().values()));
        log("flush", () -> mc.flush().get());
        check(Boolean.TRUE.equals(log("set a", () -> mc.set("a", 0, "hello").get())), "set a");
        check("hello".equals(log("get a", () -> mc.get("a"))), "get a");
        check(log("get missing", () -> mc.get("missing")) == null, "get missing");
        log("set b int", () -> mc.set("b", 0, 42).get());
        log("get b", () -> mc.get("b"));
        log("add a", () -> mc.add("a", 0, "x").get());
        log("add c", () -> mc.add("c", 0, "new").get());
        log("replace missing", () -> mc.replace("missing", 0, "x").get());
        log("replace c", () -> mc.replace("c", 0, "NEW").get());
        log("append c", () -> mc.append(0, "c", "!").get());
        log("prepend c", () -> mc.prepend(0, "c", "<").get());
        log("append missing", () -> mc.append(0, "missing", "x").get());
        check("<NEW!".equals(log("get c", () -> mc.get("c"))), "get c");
        log("getBulk", () -> mc.getBulk("a", "b", "c", "missing"));

        CASValue<Object> g = mc.gets("a");
        check(g != null && g.getCas() != 0, "gets returns a CAS");
        out.add("gets a value: " + g.getValue());
        check(log("cas a", () -> mc.cas("a", g.getCas(), "v2")) == CASResponse.OK, "cas a");
        log("cas a stale", () -> mc.cas("a", g.getCas(), "v3"));
        log("cas missing", () -> mc.cas("missing", g.getCas(), "x"));
        log("get a after cas", () -> mc.get("a"));

        log("set n", () -> mc.set("n", 0, "10").get());
        check(Long.valueOf(15).equals(log("incr n", () -> mc.incr("n", 5))), "incr");
        log("decr n", () -> mc.decr("n", 20));
        log("incr n big", () -> mc.incr("n", Long.MAX_VALUE));
        log("incr missing", () -> mc.incr("missing", 1));
        log("decr missing", () -> mc.decr("missing", 1));
        log("incr missing default", () -> mc.incr("counter", 1, 7));
        log("incr counter", () -> mc.incr("counter", 1, 7));

        log("touch a", () -> mc.touch("a", 1000).get());
        log("touch missing", () -> mc.touch("missing", 1000).get());
        log("delete a", () -> mc.delete("a").get());
        log("delete a again", () -> mc.delete("a").get());
        log("get a deleted", () -> mc.get("a"));

        byte[] big = new byte[1536 * 1024];
        for (int i = 0; i < big.length; i++) {
            big[i] = (byte) (i % 251);
        }
        log("set big", () -> mc.set("big", 0, big).get());
        Object got = mc.get("big");
        boolean same = got instanceof byte[] && Arrays.equals((byte[]) got, big);
        out.add("get big equal: " + same);
        check(same, "the 1.5 MB value came back intact");

        String longKey = "k".repeat(250);
        log("set key 250", () -> mc.set(longKey, 0, "v").get());
        log("get key 250", () -> mc.get(longKey));

        log("flush", () -> mc.flush().get());
        log("get c after flush", () -> mc.get("c"));
        log("getBulk after flush", () -> mc.getBulk("b", "c", "big"));

        // Last: errors make spymemcached close the connection and reconnect.
        log("set a again", () -> mc.set("a", 0, "text").get());
        log("incr non-numeric", () -> mc.incr("a", 1));
        byte[] huge = new byte[3 * 1024 * 1024];
        log("set huge", () -> mc.set("huge", 0, huge).get());
        log("get huge", () -> mc.get("huge"));
    }
}

package org.elasticsearch.io.ansi;

import java.util.function.Supplier;

/**
 * Stub for Elasticsearch's lib/tools/ansi-console (not on Maven Central). The server loads this
 * class reflectively; returning null means "no console attached", which is what a daemonized
 * server sees anyway.
 */
public class AnsiConsoleLoader implements Supplier<Object> {
    @Override
    public Object get() {
        return null;
    }
}

package fraudes;

import org.elasticsearch.bootstrap.ServerArgs;
import org.elasticsearch.common.io.stream.OutputStreamStreamOutput;
import org.elasticsearch.common.settings.KeyStoreWrapper;
import org.elasticsearch.common.settings.SecureString;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;

import java.io.BufferedOutputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Replacement for the part of Elasticsearch's server-cli (not published on Maven Central) that
 * builds the ServerArgs handed to org.elasticsearch.bootstrap.Elasticsearch on its stdin.
 *
 * usage: EsArgs <es.home> <config dir> <output file> [--pidfile=/abs/path] [-Ekey=value ...]
 * Reads <config dir>/elasticsearch.yml (+ -E overrides), creates/loads an empty, password-less
 * <config dir>/elasticsearch.keystore, and writes serialized ServerArgs (daemonize=true) to <output file>.
 */
public class EsArgs {
    public static void main(String[] argv) throws Exception {
        if (argv.length < 3) {
            System.err.println("usage: EsArgs <es.home> <config dir> <output file> [--pidfile=/abs/path] [-Ekey=value ...]");
            System.exit(64);
        }
        Path home = Path.of(argv[0]).toAbsolutePath();
        Path conf = Path.of(argv[1]).toAbsolutePath();
        Path out = Path.of(argv[2]).toAbsolutePath();
        Path pidFile = null;
        Map<String, String> props = new HashMap<>();
        props.put("path.home", home.toString());
        for (int i = 3; i < argv.length; i++) {
            String a = argv[i];
            if (a.startsWith("--pidfile=")) {
                pidFile = Path.of(a.substring("--pidfile=".length())).toAbsolutePath();
            } else if (a.startsWith("-E") && a.indexOf('=') > 2) {
                props.put(a.substring(2, a.indexOf('=')), a.substring(a.indexOf('=') + 1));
            } else {
                throw new IllegalArgumentException("unknown argument " + a);
            }
        }
        String host = System.getenv().getOrDefault("HOSTNAME", "es-node");
        Environment env = InternalSettingsPreparer.prepareEnvironment(Settings.EMPTY, props, conf, () -> host);
        KeyStoreWrapper keystore = KeyStoreWrapper.bootstrap(env.configDir(), () -> new SecureString(new char[0]));
        ServerArgs args = new ServerArgs(true, false, pidFile, keystore, env.settings(), env.configDir(), env.logsDir());
        Files.createDirectories(out.getParent());
        try (OutputStream os = new BufferedOutputStream(Files.newOutputStream(out));
             OutputStreamStreamOutput so = new OutputStreamStreamOutput(os)) {
            args.writeTo(so);
            so.flush();
        }
        keystore.close();
    }
}

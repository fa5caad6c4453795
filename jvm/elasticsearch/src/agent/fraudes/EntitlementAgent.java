package fraudes;

import java.lang.instrument.Instrumentation;
import java.lang.reflect.Method;

/**
 * Stand-in for Elasticsearch's lib/entitlement-agent jar (not published on Maven Central).
 * EntitlementBootstrap attaches this jar to its own JVM and passes the initialization
 * class name as agentArgs; we just call its static initialize(Instrumentation).
 */
public class EntitlementAgent {
    public static void agentmain(String agentArgs, Instrumentation inst) throws Exception {
        String cls = (agentArgs == null || agentArgs.isEmpty())
            ? "org.elasticsearch.entitlement.initialization.EntitlementInitialization"
            : agentArgs;
        Class<?> init = Class.forName(cls);
        Method m = init.getMethod("initialize", Instrumentation.class);
        m.invoke(null, inst);
    }

    public static void premain(String agentArgs, Instrumentation inst) throws Exception {
        agentmain(agentArgs, inst);
    }
}

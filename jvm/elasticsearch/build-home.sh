#!/usr/bin/env bash
# Builds a runnable Elasticsearch 8.19 home (ES_HOME) from Maven Central artifacts only
# (no Docker, no elastic.co download here). Called by `make jars`; the result is git-ignored.
#   usage: build-home.sh ES_HOME
# Maven Central has the server, transport-netty4 and the entitlement bridge, but not the
# distribution's launcher tools, entitlement agent, ansi console or rest-root module; the
# small sources under src/ stand in for those (see each file's comment). fraud/stack/elasticsearch.py
# starts the node from this home.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ES_HOME="${1:?usage: build-home.sh ES_HOME}"
ES_VERSION=8.19.21
JAVA_HOME="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}"
JAVAC="$JAVA_HOME/bin/javac"; JAR="$JAVA_HOME/bin/jar"

rm -rf "$ES_HOME"; mkdir -p "$ES_HOME"/{lib,modules,plugins,tools}
ES_HOME="$(cd "$ES_HOME" && pwd)"

# 1. jars: lib/ (module path), lib/entitlement-bridge/, modules/transport-netty4/
mvn -B -q -f "$HERE/pom.xml" package -Des.home="$ES_HOME" -Des.version="$ES_VERSION"
rm -rf "$HERE/target"

# 2. transport-netty4: its plugin descriptor and entitlement policy are embedded in the jar
NETTY="$ES_HOME/modules/transport-netty4"
( cd "$NETTY" && "$JAR" xf "transport-netty4-$ES_VERSION.jar" \
    META-INF/es-plugins/transport-netty4/plugin-descriptor.properties \
    META-INF/es-plugins/transport-netty4/entitlement-policy.yaml \
  && mv META-INF/es-plugins/transport-netty4/* . && rm -rf META-INF )

BUILD="$(mktemp -d)"; trap 'rm -rf "$BUILD"' EXIT
CP="$ES_HOME/lib/*"
compile() {  # compile <name> <classpath> <source...> into $BUILD/<name>
  local name=$1 cp=$2; shift 2
  mkdir -p "$BUILD/$name"
  "$JAVAC" --release 17 -nowarn ${cp:+-cp "$cp"} -d "$BUILD/$name" "$@"
}

# 3. entitlement agent (looked up in lib/entitlement-agent via es.path.home)
compile agent "" "$HERE/src/agent/fraudes/EntitlementAgent.java"
mkdir -p "$ES_HOME/lib/entitlement-agent"
"$JAR" cfm "$ES_HOME/lib/entitlement-agent/fraudes-entitlement-agent.jar" "$HERE/src/agent/MANIFEST.MF" -C "$BUILD/agent" .

# 4. rest-root-lite module (GET / and HEAD /)
compile restroot "$CP" "$HERE/src/restroot/fraudes/restroot/RestRootPlugin.java"
mkdir -p "$ES_HOME/modules/rest-root-lite"
"$JAR" cf "$ES_HOME/modules/rest-root-lite/rest-root-lite.jar" -C "$BUILD/restroot" .
cp "$HERE/src/restroot/plugin-descriptor.properties" "$ES_HOME/modules/rest-root-lite/"

# 5. lib/tools/ansi-console stub (the server fails when the directory is missing)
compile ansi "" "$HERE/src/ansi/org/elasticsearch/io/ansi/AnsiConsoleLoader.java"
mkdir -p "$ES_HOME/lib/tools/ansi-console"
"$JAR" cf "$ES_HOME/lib/tools/ansi-console/fraudes-ansi-console-stub.jar" -C "$BUILD/ansi" .

# 6. ServerArgs writer (stand-in for server-cli); outside lib/ so it stays off the module path
compile tools "$CP" "$HERE/src/tools/fraudes/EsArgs.java"
"$JAR" cf "$ES_HOME/tools/fraudes-tools.jar" -C "$BUILD/tools" .

# 7. native zstd for the zstd stored-fields codec: the distribution bundles it, Maven Central
#    does not, so take the system one (Debian package libzstd1)
mkdir -p "$ES_HOME/lib/platform/linux-x64"
ZSTD="$(ls /usr/lib/x86_64-linux-gnu/libzstd.so.1 /lib/x86_64-linux-gnu/libzstd.so.1 /usr/lib64/libzstd.so.1 2>/dev/null | head -1 || true)"
if [[ -n "$ZSTD" ]]; then cp -L "$ZSTD" "$ES_HOME/lib/platform/linux-x64/libzstd.so"
else echo "warning: libzstd.so.1 not found; index.codec=best_compression will fail" >&2; fi

chmod -R a+rX "$ES_HOME"
echo "Elasticsearch $ES_VERSION home ready: $ES_HOME"

"""Elasticsearch 8.19, a real single node, from the home ``make jars`` builds in .jars/elasticsearch.

The server runs on the module path exactly as the distribution's launcher would
start it (jvm/elasticsearch/build-home.sh explains the stand-ins for the launcher
pieces Maven Central lacks). Elasticsearch refuses to run as root, so under root
the node runs as the system user ``fraud-es``, created on first use.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from string import Template

from fraud.config import CONF_DIR, ElasticsearchConf, Settings
from fraud.jvm import JARS_DIR, MissingJarsError, java_executable
from fraud.stack.process import ManagedProcess, ServiceError

ES_HOME = JARS_DIR / "elasticsearch"
RUN_AS_USER = "fraud-es"
def elasticsearch_process(settings: Settings) -> ManagedProcess:
    conf = settings.elasticsearch
    return ManagedProcess(
        name="elasticsearch", home=settings.state_dir / "elasticsearch", host=conf.host, port=conf.port,
        healthy=lambda: cluster_ready(conf),
        hint="check that elasticsearch.port / transport_port are free, that `make jars` built "
             f"{ES_HOME}, and the free memory (heap {conf.heap_mb} MB)")


def cluster_ready(conf: ElasticsearchConf) -> bool:
    with urllib.request.urlopen(f"{conf.url}/_cluster/health", timeout=2) as response:
        return json.load(response)["status"] in ("yellow", "green")


def _java_feature_version(java: str) -> int:
    release = Path(java).resolve().parents[1] / "release"
    match = re.search(r'JAVA_VERSION="(\d+)', release.read_text()) if release.exists() else None
    return int(match.group(1)) if match else 17


def _run_as() -> list[str]:
    """Prefix that drops root to RUN_AS_USER (creating it once); empty when not root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(RUN_AS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", RUN_AS_USER], check=True)
    return ["setpriv", f"--reuid={RUN_AS_USER}", f"--regid={RUN_AS_USER}", "--init-groups", "--"]


def start_elasticsearch(settings: Settings, process: ManagedProcess) -> None:
    """Start the node (config, server arguments, JVM options written under the process's home).

    Raises MissingJarsError without the Elasticsearch home (`make jars`), ServiceError when the server arguments
    cannot be prepared or the port is taken."""
    conf = settings.elasticsearch
    if not (ES_HOME / "tools").is_dir():
        raise MissingJarsError(f"no Elasticsearch home in {ES_HOME}: run `make jars`")
    home = process.home
    config_dir, data_dir, tmp_dir = home / "config", home / "data", home / "tmp"
    for folder in (config_dir, data_dir, tmp_dir):
        folder.mkdir(parents=True, exist_ok=True)
    (config_dir / "elasticsearch.yml").write_text(
        Template((CONF_DIR / "elasticsearch" / "elasticsearch.yml").read_text()).substitute(
            host=conf.host, port=conf.port, transport_port=conf.transport_port, data_dir=data_dir, logs_dir=home))
    shutil.copy(CONF_DIR / "elasticsearch" / "log4j2.properties", config_dir)
    run_as = _run_as()
    if run_as:
        subprocess.run(["chown", "-R", f"{RUN_AS_USER}:", str(home)], check=True)

    java = java_executable()
    # What the distribution's server-cli does: serialize the ServerArgs the server reads on stdin.
    args_file = tmp_dir / "server-args.bin"
    made = subprocess.run([*run_as, java, "-Xmx64m", "-Dlog4j2.disable.jmx=true",
                           "-cp", f"{ES_HOME}/lib/*:{ES_HOME}/tools/fraudes-tools.jar", "fraudes.EsArgs",
                           str(ES_HOME), str(config_dir), str(args_file)], capture_output=True, text=True)
    if made.returncode != 0:
        raise ServiceError(f"elasticsearch: preparing the server arguments failed:\n{made.stderr[-3000:]}")

    options = [line.strip() for line in (CONF_DIR / "elasticsearch" / "jvm.options").read_text().splitlines()
               if line.strip() and not line.lstrip().startswith("#")]
    bridge = next((ES_HOME / "lib" / "entitlement-bridge").glob("*.jar"))
    system = [
        f"-Xms{conf.heap_mb}m", f"-Xmx{conf.heap_mb}m",
        f"-Des.path.home={ES_HOME}", f"-Des.path.conf={config_dir}", f"-Djava.io.tmpdir={tmp_dir}",
        f"-XX:ErrorFile={home}/hs_err_pid%p.log", f"-XX:HeapDumpPath={home}",
        "-Djdk.attach.allowAttachSelf=true", f"--patch-module=java.base={bridge}",
        "--add-exports=java.base/org.elasticsearch.entitlement.bridge="
        "org.elasticsearch.entitlement,java.logging,java.net.http,java.naming,jdk.net",
    ]
    if _java_feature_version(java) >= 21:
        # libvec (native SIMD) is not on Maven Central; without this JDK 21+ disables native access entirely
        system += ["-XX:+EnableDynamicAgentLoading", "-Dorg.elasticsearch.nativeaccess.enableVectorLibrary=false",
                   "--enable-native-access=org.elasticsearch.nativeaccess,org.apache.lucene.core",
                   "--enable-native-access=ALL-UNNAMED"]
    process.start(
        [*run_as, java, *options, *system, "--module-path", str(ES_HOME / "lib"),
         "--add-modules=jdk.net", "--add-modules=jdk.management.agent", "--add-modules=ALL-MODULE-PATH",
         "-m", "org.elasticsearch.server/org.elasticsearch.bootstrap.Elasticsearch"],
        env={"LIBFFI_TMPDIR": str(tmp_dir), "ES_TMPDIR": ""}, cwd=home, stdin=args_file)

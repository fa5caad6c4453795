"""The Docker deliverables agree with conf/ and with what Compose and Kibana accept.

No Docker engine runs here, so docker-compose.yml, docker/ and conf/kibana/ are checked
statically: Debian's docker-compose 1.29 resolves the file, the Compose Specification's
JSON schema (vendored in docker/compose-spec/) validates it, every host, port, heap and
path it names matches conf/docker.yaml and conf/local.yaml, and the Kibana saved objects
only reference objects they ship and fields the index template maps.
"""
from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import runpy
import shutil
import subprocess
import threading
from pathlib import Path

import jsonschema
import pytest
import yaml

from fraud.cli import parse
from fraud.config import DEFAULT_CONFIG, PROJECT_ROOT, load_settings
from fraud.jvm import JARS_DIR

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES = COMPOSE["services"]
DOCKER = load_settings(PROJECT_ROOT / "conf" / "docker.yaml", env={})
LOCAL = load_settings(DEFAULT_CONFIG, env={})
APP_IMAGE = "fraud-detection:local"
APP_SERVICES = sorted(name for name, service in SERVICES.items() if service.get("image") == APP_IMAGE)
DOCKERFILE = (PROJECT_ROOT / "docker" / "Dockerfile").read_text()
KIBANA_DIR = PROJECT_ROOT / "conf" / "kibana"
INDEX_TEMPLATE = json.loads((PROJECT_ROOT / "conf" / "elasticsearch" / "transactions-scored.template.json").read_text())


def published_port(service: str) -> int:
    return int(SERVICES[service]["ports"][0].split(":")[0])


def port_pairs(service: str) -> set[tuple[int, int]]:
    return {tuple(int(p) for p in str(port).split(":")) for port in SERVICES[service].get("ports", [])}


def environment(service: str) -> dict[str, str]:
    return {key: str(value) for key, value in SERVICES[service].get("environment", {}).items()}


def depends_on(service: str) -> dict[str, dict]:
    return SERVICES[service].get("depends_on", {})


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing in CI: `make test` installs the apt package docker-compose")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return binary


def run_compose(*args: str, password: str | None = "compose-test") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "FRAUD_", "DOCKER_"))}
    if password is not None:
        env["FRAUD_MYSQL_PASSWORD"] = password
    return subprocess.run([docker_compose(), "-f", str(COMPOSE_FILE), *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- the local stack (unchanged)

def test_services_publish_the_configured_ports():
    settings = load_settings(DEFAULT_CONFIG, env={})
    assert published_port("kafka") == settings.kafka.port
    assert published_port("elasticsearch") == settings.elasticsearch.port
    assert published_port("mysql") == settings.mysql.port


def test_mysql_database_user_and_ddl_match_the_configuration():
    settings = load_settings(DEFAULT_CONFIG, env={})
    mysql = COMPOSE["services"]["mysql"]
    assert mysql["environment"]["MYSQL_DATABASE"] == settings.mysql.database
    assert mysql["environment"]["MYSQL_USER"] == settings.mysql.user
    assert "${FRAUD_MYSQL_PASSWORD" in mysql["environment"]["MYSQL_PASSWORD"]  # never a literal secret
    assert "./conf/mysql/schema.sql:/docker-entrypoint-initdb.d/10-schema.sql:ro" in mysql["volumes"]


def test_elasticsearch_and_kafka_versions_match_the_local_stack():
    es_image = COMPOSE["services"]["elasticsearch"]["image"]
    es_home_pom = (PROJECT_ROOT / "jvm" / "elasticsearch" / "pom.xml").read_text()
    connector_pom = (PROJECT_ROOT / "jvm" / "spark" / "pom.xml").read_text()
    server = re.search(r"<es.version>([\d.]+)<", es_home_pom).group(1)
    connector = re.search(r"<elasticsearch.version>([\d.]+)<", connector_pom).group(1)
    assert es_image.endswith(f":{server}")
    assert server.split(".")[0] == connector.split(".")[0] == "8"
    kafka_pom = (PROJECT_ROOT / "jvm" / "kafka" / "pom.xml").read_text()
    kafka = re.search(r"<kafka.version>([\d.]+)<", kafka_pom).group(1)
    assert COMPOSE["services"]["kafka"]["image"] == f"apache/kafka:{kafka}"


# ---------------------------------------------------------------- Compose accepts the file

def test_docker_compose_1_29_resolves_the_file():
    """Debian's docker-compose 1.29 (the strictest reader: no top-level `name:`) accepts the file."""
    result = run_compose("config")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == set(SERVICES)
    assert resolved["services"]["mysql"]["environment"]["MYSQL_PASSWORD"] == "compose-test"


def test_docker_compose_refuses_to_run_without_the_mysql_password():
    result = run_compose("config", password=None)
    assert result.returncode != 0
    assert "FRAUD_MYSQL_PASSWORD" in result.stderr


def test_docker_compose_1_29_handles_the_image_build_before_the_services_that_reuse_it():
    """v1 prepares images in dependency order; a service that only names the image must come after its build."""
    order = run_compose("config", "--services").stdout.split()
    builder = next(name for name in APP_SERVICES if "build" in SERVICES[name])
    assert [name for name in order if name in APP_SERVICES][0] == builder


def test_the_file_validates_against_the_compose_specification_schema():
    schema = json.loads((PROJECT_ROOT / "docker" / "compose-spec" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert not errors
    broken = {**COMPOSE, "services": {**SERVICES, "stream": {**SERVICES["stream"], "prots": ["4040:4040"]}}}
    assert list(validator.iter_errors(broken)), "the schema must reject an unknown service key"


# ---------------------------------------------------------------- the compose file agrees with conf/

def test_every_service_host_of_the_docker_configuration_is_a_compose_service():
    spark_host = re.fullmatch(r"spark://([\w.-]+):(\d+)", DOCKER.spark.master).group(1)
    for host in (DOCKER.kafka.host, DOCKER.elasticsearch.host, DOCKER.mysql.host, spark_host):
        assert host in SERVICES, host


def test_kafka_listens_in_the_network_on_the_configured_port():
    env = environment("kafka")
    assert f"PLAINTEXT://:{DOCKER.kafka.port}" in env["KAFKA_LISTENERS"].split(",")
    assert f"PLAINTEXT://{DOCKER.kafka.host}:{DOCKER.kafka.port}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"PLAINTEXT_HOST://localhost:{LOCAL.kafka.port}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")


def test_published_ports_match_both_configurations():
    assert (LOCAL.elasticsearch.port, DOCKER.elasticsearch.port) in port_pairs("elasticsearch")
    assert (LOCAL.mysql.port, DOCKER.mysql.port) in port_pairs("mysql")
    assert DOCKER.dashboard.host == "0.0.0.0"
    assert (LOCAL.dashboard.port, DOCKER.dashboard.port) in port_pairs("dashboard")
    assert (5601, 5601) in port_pairs("kibana")


def test_heaps_are_the_configured_small_ones():
    assert f"-Xmx{DOCKER.kafka.heap_mb}m" in environment("kafka")["KAFKA_HEAP_OPTS"].split()
    assert f"-Xmx{DOCKER.elasticsearch.heap_mb // 1024}g" in environment("elasticsearch")["ES_JAVA_OPTS"].split()
    assert SERVICES["stream"]["command"] == ["fraud", "stream"]  # its driver memory: spark.driver_memory
    assert re.fullmatch(r"[1-3]g", DOCKER.spark.driver_memory)


def test_the_spark_cluster_is_the_configured_master():
    master = re.fullmatch(r"spark://([\w.-]+):(\d+)", DOCKER.spark.master)
    host, port = master.group(1), master.group(2)
    assert host == "spark-master"
    command = SERVICES["spark-master"]["command"]
    assert command[:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    assert option(command, "--host") == host and option(command, "--port") == port
    assert SERVICES["spark-worker"]["command"][-1] == DOCKER.spark.master
    # `fraud stream` connects to DOCKER.spark.master itself; executors call the driver back by its hostname
    submit_args = environment("stream")["PYSPARK_SUBMIT_ARGS"].split()
    assert f"spark.driver.host={SERVICES['stream']['hostname']}" in submit_args
    assert submit_args[-1] == "pyspark-shell"


def test_app_services_run_the_one_image_with_the_docker_configuration():
    assert set(APP_SERVICES) == {"init", "spark-master", "spark-worker", "stream", "producer", "dashboard"}
    builders = [name for name in APP_SERVICES if "build" in SERVICES[name]]
    assert builders == ["init"]
    assert SERVICES["init"]["build"] == {"context": ".", "dockerfile": "docker/Dockerfile"}
    for name in APP_SERVICES:
        assert environment(name)["FRAUD_CONFIG"] == "conf/docker.yaml", name


def test_every_app_service_starts_after_the_image_build():
    """Compose v2 skips pulling an image another service builds; v1 needs the dependency order."""
    def needs(name: str) -> set[str]:
        direct = set(depends_on(name))
        return direct.union(*(needs(d) for d in direct))
    for name in APP_SERVICES:
        if name != "init":
            assert "init" in needs(name), name


def test_dependencies_wait_for_health_or_completion():
    for name in SERVICES:
        for target, spec in depends_on(name).items():
            assert target in SERVICES, f"{name} -> {target}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target}, which has no health check"
            else:
                assert spec["condition"] == "service_completed_successfully", f"{name} -> {target}"
                assert SERVICES[target].get("restart", "no") == "no", f"{target} is a one-shot"
    long_running = {"kafka", "mysql", "elasticsearch", "kibana", "spark-master", "spark-worker", "stream", "dashboard"}
    assert {name for name in SERVICES if "healthcheck" in SERVICES[name]} >= long_running


def test_secrets_come_only_from_the_environment():
    for name in SERVICES:
        for key, value in environment(name).items():
            if "PASSWORD" in key and key != "MYSQL_RANDOM_ROOT_PASSWORD":
                assert value.startswith("${") and ":?" in value, f"{name}.{key} must come from the environment"
    assert "FRAUD_MYSQL_PASSWORD" not in environment("spark-master")


def test_checkpoints_and_delta_tables_are_on_one_volume_the_driver_and_executors_share():
    state = str(DOCKER.state_dir)
    assert DOCKER.checkpoint_dir.is_relative_to(DOCKER.state_dir) and Path(DOCKER.scored_table).is_relative_to(state)
    mounts = {name: [v for v in SERVICES[name].get("volumes", []) if v.split(":")[1] == state]
              for name in ("stream", "spark-worker")}
    assert mounts["stream"] and mounts["stream"] == mounts["spark-worker"]
    volume = mounts["stream"][0].split(":")[0]
    assert volume in COMPOSE["volumes"]
    for name in SERVICES:
        for mount in SERVICES[name].get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith("./") or source in COMPOSE["volumes"], f"{name}: {mount}"
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), f"{name}: {mount}"


def test_the_commands_the_services_run_exist():
    fraud_commands = [SERVICES[name]["command"] for name in APP_SERVICES if SERVICES[name]["command"][0] == "fraud"]
    assert {command[1] for command in fraud_commands} == {"init", "dashboard", "stream"}
    for command in fraud_commands:
        docker = ["--config", str(PROJECT_ROOT / "conf" / "docker.yaml")]  # what FRAUD_CONFIG names there
        assert parse([*docker, *command[1:]])[0] == command[1]  # raises on an unknown command, option or value
    producer = SERVICES["producer"]["command"]
    assert producer[:2] == ["python", "docker/produce.py"] and float(producer[2]) > 0
    script = runpy.run_path(str(PROJECT_ROOT / producer[1]), run_name="imported")  # its imports resolve
    assert callable(script["producer_args"]) and callable(script["main"])


def test_the_dashboard_health_check_asks_a_route_the_dashboard_serves():
    from fraud.dashboard import create_app

    check = " ".join(SERVICES["dashboard"]["healthcheck"]["test"])
    url = re.search(r"http://localhost:(\d+)(/\S*)", check)
    assert int(url.group(1)) == DOCKER.dashboard.port
    assert create_app(DOCKER).test_client().get(url.group(2)).status_code == 200


def test_kibana_runs_the_elasticsearch_version_and_imports_the_saved_objects():
    version = SERVICES["elasticsearch"]["image"].rsplit(":", 1)[1]
    assert SERVICES["kibana"]["image"] == f"docker.elastic.co/kibana/kibana:{version}"
    assert SERVICES["kibana-setup"]["image"] == SERVICES["kibana"]["image"]
    assert environment("kibana")["ELASTICSEARCH_HOSTS"] == f"http://elasticsearch:{DOCKER.elasticsearch.port}"
    assert "./conf/kibana:/saved-objects:ro" in SERVICES["kibana-setup"]["volumes"]
    assert depends_on("kibana-setup")["kibana"] == {"condition": "service_healthy"}


# ---------------------------------------------------------------- the image

def test_the_image_installs_the_pinned_environment_and_the_jars_like_the_makefile():
    assert re.search(r"^FROM python:3\.11-slim-bookworm$", DOCKERFILE, re.M)
    assert re.search(r"apt-get install [^\n]*openjdk-17-jre-headless[^\n]*maven", DOCKERFILE)
    locked = DOCKERFILE.index("pip install -r requirements.lock")
    assert locked < DOCKERFILE.index("pip install --no-deps -e .")
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    resolve = "-f jvm/$*/pom.xml dependency:copy-dependencies -DincludeScope=runtime"
    assert resolve in makefile
    workdir = re.search(r"^WORKDIR (\S+)$", DOCKERFILE, re.M).group(1)
    jars = f"{workdir}/{JARS_DIR.relative_to(PROJECT_ROOT)}/spark"
    assert re.search(r"mvn -q -B " + re.escape(resolve.replace("$*", "spark")) + r"\s*\\\s*-DoutputDirectory="
                     + re.escape(jars) + r"\s", DOCKERFILE)  # where fraud.jvm.jars("spark") looks


def test_dockerignore_keeps_local_state_out_and_the_product_in():
    patterns = [line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for excluded in (".venv", ".jars", ".state", "bench-results", "test-artifacts", ".git"):
        assert excluded in patterns
    for needed in ("fraud/config.py", "jobs/stream.py", "udfs", "training", "models", "conf/docker.yaml",
                   "jvm/spark/pom.xml", "requirements.lock", "pyproject.toml", "docker/produce.py"):
        assert not any(fnmatch.fnmatch(needed, p) or needed.startswith(p.rstrip("/") + "/") for p in patterns), needed


# ---------------------------------------------------------------- Kibana saved objects

def saved_objects() -> list[dict]:
    files = sorted(KIBANA_DIR.glob("*.ndjson"))
    assert files
    objects = []
    for path in files:
        text = path.read_text()
        assert text.endswith("\n"), f"{path.name}: the import bundle concatenates the files"
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                objects.append(json.loads(line))
            except json.JSONDecodeError as exc:
                pytest.fail(f"{path.name}:{number}: {exc}")
    return objects


def mapped_fields() -> dict[str, str]:
    """Field name -> type, sub-fields included, from the index template (plus the label, tx_fraud)."""
    fields = {}

    def walk(properties: dict, prefix: str = "") -> None:
        for name, spec in properties.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
                continue
            fields[prefix + name] = spec["type"]
            for sub, sub_spec in spec.get("fields", {}).items():
                fields[f"{prefix}{name}.{sub}"] = sub_spec["type"]
    walk(INDEX_TEMPLATE["template"]["mappings"]["properties"])
    fields.setdefault("tx_fraud", "byte")  # written with the labels (upsert by the stream)
    return fields


def data_views() -> list[dict]:
    return [o for o in saved_objects() if o["type"] == "index-pattern"]


def usable_fields() -> dict[str, str]:
    """Mapped fields plus the data view's runtime fields (whose scripts read mapped fields only)."""
    fields = mapped_fields()
    for view in data_views():
        for name, spec in json.loads(view["attributes"].get("runtimeFieldMap", "{}")).items():
            read = set(re.findall(r"doc\['([\w.]+)'\]", spec["script"]["source"]))
            assert read and read <= set(fields), f"runtime field {name} reads {read}"
            fields[name] = spec["type"]
    return fields


NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
AGG_FIELD_TYPES = {"avg": NUMERIC, "sum": NUMERIC, "histogram": NUMERIC, "min": NUMERIC | {"date"},
                   "max": NUMERIC | {"date"}, "date_histogram": {"date"},
                   "terms": NUMERIC | {"keyword", "date"}, "cardinality": NUMERIC | {"keyword", "date"},
                   "top_hits": NUMERIC | {"keyword", "date"}}


def kql_fields(query: str) -> set[str]:
    return set(re.findall(r"(?<![\w.])([A-Za-z_][\w.]*)\s*:", query))


def test_saved_objects_are_importable_ndjson_with_unique_ids():
    objects = saved_objects()
    keys = [(o["type"], o["id"]) for o in objects]
    assert len(keys) == len(set(keys))
    # an import fails on a migration version newer than the Kibana's; these are what 8.17 exports write
    versions = {"index-pattern": "8.0.0", "visualization": "8.5.0", "dashboard": "10.2.0"}
    for obj in objects:
        assert set(obj) >= {"id", "type", "attributes", "references"}, obj.get("id")
        assert obj["typeMigrationVersion"] == versions[obj["type"]] and obj["coreMigrationVersion"] == "8.8.0"


def test_every_reference_resolves_within_the_files():
    objects = saved_objects()
    present = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in present, f"{obj['id']} -> {ref}"
    shown = {ref["id"] for o in objects if o["type"] == "dashboard" for ref in o["references"]}
    assert {o["id"] for o in objects if o["type"] == "visualization"} <= shown, "every visualization is on a dashboard"


def test_the_data_view_is_the_configured_index_with_its_time_field():
    (view,) = data_views()
    alias = DOCKER.elasticsearch.index
    assert view["attributes"]["title"] == f"{alias}*"
    assert fnmatch.fnmatch(alias, view["attributes"]["title"])
    assert fnmatch.fnmatch(f"{alias}-000001", view["attributes"]["title"])
    assert mapped_fields()[view["attributes"]["timeFieldName"]] == "date"
    assert view["attributes"]["timeFieldName"] == "tx_datetime"


def test_visualizations_use_only_mapped_fields_with_fitting_types():
    fields = usable_fields()
    visualizations = [o for o in saved_objects() if o["type"] == "visualization"]
    assert len(visualizations) >= 15
    for obj in visualizations:
        name = obj["id"]
        search = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        assert {"name": search["indexRefName"], "type": "index-pattern", "id": data_views()[0]["id"]} \
            in obj["references"], name
        used = kql_fields(search["query"]["query"])
        state = json.loads(obj["attributes"]["visState"])
        assert state["title"] == obj["attributes"]["title"]
        agg_ids = {agg["id"] for agg in state["aggs"]}
        metric_ids = {agg["id"] for agg in state["aggs"] if agg["schema"] == "metric"}
        for agg in state["aggs"]:
            params = agg["params"]
            for key in ("field", "sortField"):
                if key in params:
                    used.add(params[key])
                    allowed = AGG_FIELD_TYPES.get(agg["type"] if key == "field" else "max")
                    assert fields.get(params[key]) in allowed, f"{name}: {agg['type']} on {params[key]}"
            for condition in params.get("filters", []):
                used |= kql_fields(condition["input"]["query"])
            if agg["type"] == "terms":
                assert params["orderBy"] in metric_ids | {"_key"}, name
        for series in state["params"].get("seriesParams", []):
            assert series["data"]["id"] in metric_ids, name
            assert series["valueAxis"] in {axis["id"] for axis in state["params"]["valueAxes"]}, name
        assert len(agg_ids) == len(state["aggs"]), name
        unknown = used - set(fields)
        assert not unknown, f"{name} uses fields the index does not map: {unknown}"


def test_dashboards_place_every_panel_by_reference_on_the_grid():
    allowed = {"title", "description", "kibanaSavedObjectMeta", "timeRestore", "timeFrom", "timeTo",
               "refreshInterval", "controlGroupInput", "panelsJSON", "optionsJSON", "hits", "version"}
    dashboards = [o for o in saved_objects() if o["type"] == "dashboard"]
    assert len(dashboards) == 3
    for obj in dashboards:
        assert set(obj["attributes"]) <= allowed, obj["id"]  # Kibana's dashboard schema forbids unknown keys
        references = {ref["name"]: ref for ref in obj["references"]}
        cells = set()
        for panel in json.loads(obj["attributes"]["panelsJSON"]):
            grid, index = panel["gridData"], panel["panelIndex"]
            assert grid["i"] == index and 0 <= grid["x"] and grid["x"] + grid["w"] <= 48
            ref = references[f"{index}:{panel['panelRefName']}"]
            assert ref["type"] == panel["type"] == "visualization"
            area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                    for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & area, f"{obj['id']}: panel {index} overlaps another"
            cells |= area


def test_the_setup_script_imports_every_object_in_one_request_and_fails_on_errors(tmp_path):
    if shutil.which("curl") is None:
        if os.environ.get("CI"):
            pytest.fail("curl is missing in CI")
        pytest.skip("curl is not installed")
    received, answer = [], {"body": b'{"successCount":1,"success":true,"warnings":[]}'}

    class FakeKibana(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # /api/status
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("kbn-xsrf"), body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(answer["body"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKibana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = PROJECT_ROOT / SERVICES["kibana-setup"]["volumes"][0].split(":")[0]
    env = {**os.environ, "KIBANA_URL": f"http://127.0.0.1:{server.server_port}", "SAVED_OBJECTS": str(KIBANA_DIR),
           "TMPDIR": str(tmp_path)}
    try:
        ok = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
        answer["body"] = b'{"successCount":0,"success":false,"errors":[{"id":"x"}]}'
        failed = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert failed.returncode != 0
    path, xsrf, body = received[0]
    assert path == "/api/saved_objects/_import?overwrite=true" and xsrf == "true"
    assert re.search(rb'filename="[^"]+\.ndjson"', body)
    for obj in saved_objects():
        assert json.dumps(obj["id"]).encode() in body

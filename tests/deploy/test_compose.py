"""docker-compose.yml through a real Compose parser (the compose_spec crate, strict: unknown keys
and bad values are errors). No Docker engine runs here, so this is as far as Compose is checked."""

import re
from urllib.parse import urlsplit

import pytest
from compose_spec import PyCompose

from model_api.settings import Settings
from tests.stack import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's own first step, for the forms this file uses: ${VAR} and ${VAR:-default}."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m.group(1)) or m.group(2) or "", text)


@pytest.fixture(scope="module")
def compose() -> dict:
    parsed = PyCompose.from_yaml(interpolate(COMPOSE_FILE.read_text(), {}))
    parsed.validate()
    return parsed.to_dict()


def test_four_services_behind_nginx(compose):
    assert set(compose["services"]) == {"api", "ui", "nginx", "postgres"}
    published = [service for service in compose["services"].values() if service.get("ports")]
    assert published == [compose["services"]["nginx"]]


def test_every_service_has_a_healthcheck_and_restarts(compose):
    for name, service in compose["services"].items():
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped", name


def test_startup_order_waits_for_health(compose):
    services = compose["services"]
    assert services["api"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["ui"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert services["nginx"]["depends_on"] == {
        "api": {"condition": "service_healthy"},
        "ui": {"condition": "service_healthy"},
    }


def test_store_is_a_named_volume_and_data_comes_from_the_environment(compose):
    assert "clip-store" in compose["volumes"]
    api = compose["services"]["api"]
    assert any(str(volume).startswith("clip-store") or "clip-store" in str(volume) for volume in api["volumes"])
    assert api["environment"]["CIFAR10_DATA"] == "/data/cifar10"
    with_host_data = PyCompose.from_yaml(interpolate(COMPOSE_FILE.read_text(), {"CIFAR10_HOST_DIR": "/srv/cifar10"}))
    assert "/srv/cifar10" in str(with_host_data.to_dict()["services"]["api"]["volumes"])


def parsed_with(env: dict[str, str]) -> dict:
    return PyCompose.from_yaml(interpolate(COMPOSE_FILE.read_text(), env)).to_dict()


def test_upload_limit_is_one_setting_for_all_three(compose):
    default = str(Settings.model_fields["max_upload_bytes"].default)
    for limit, services in (
        (default, compose["services"]),
        ("5000000", parsed_with({"CLIP_MAX_UPLOAD_BYTES": "5000000"})["services"]),
    ):
        ours = {name: service for name, service in services.items() if name != "postgres"}
        assert {name: str(service["environment"]["CLIP_MAX_UPLOAD_BYTES"]) for name, service in ours.items()} == {
            "api": limit,
            "ui": limit,
            "nginx": limit,
        }
    # Streamlit's MiB limit is derived from it (python -m streamlit_ui), never set beside it.
    assert "MAX_UPLOAD_SIZE" not in COMPOSE_FILE.read_text()
    assert "CLIP_MAX_UPLOAD_MB" not in COMPOSE_FILE.read_text()


def test_api_port_is_one_variable(compose):
    default = str(Settings.model_fields["port"].default)
    for port, services in ((default, compose["services"]), ("9123", parsed_with({"CLIP_PORT": "9123"})["services"])):
        assert str(services["api"]["environment"]["CLIP_PORT"]) == port
        assert services["ui"]["environment"]["API_URL"] == f"http://api:{port}"
        assert services["nginx"]["environment"]["API_SERVERS"] == f"server api:{port};"
    # Nothing else names the default: the healthcheck reads CLIP_PORT inside the container.
    assert not re.search(rf"\b{default}\b", str(parsed_with({"CLIP_PORT": "9123"})))


def test_dockerfile_names_each_port_once():
    dockerfile = (ROOT / "Dockerfile").read_text()
    api_port = str(Settings.model_fields["port"].default)
    ui_port = re.search(r"STREAMLIT_SERVER_PORT=(\d+)", dockerfile).group(1)
    # Each port once, in its ENV line; EXPOSE, the healthcheck and the server read the variable.
    assert re.findall(rf"\b(?:{api_port}|{ui_port})\b", dockerfile) == [api_port, ui_port]
    assert f"CLIP_PORT={api_port}" in dockerfile
    assert dockerfile.count("EXPOSE ${CLIP_PORT}") == 1 and dockerfile.count("EXPOSE ${STREAMLIT_SERVER_PORT}") == 1
    assert 'CMD ["python", "-m", "model_api", "--host", "0.0.0.0"]' in dockerfile  # the port: Settings, CLIP_PORT
    # The UI starts through its launcher, which sets Streamlit's upload limit from CLIP_MAX_UPLOAD_BYTES.
    assert 'CMD ["python", "-m", "streamlit_ui"]' in dockerfile
    assert parsed_with({})["services"]["nginx"]["environment"]["UI_UPSTREAM"] == f"ui:{ui_port}"


def test_images_are_pinned_and_run_as_non_root():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\w+)", dockerfile, re.MULTILINE))
    bases = [image for image in re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE) if image not in stages]
    nginx = re.search(r"image: (nginx\S+)", COMPOSE_FILE.read_text()).group(1)
    postgres = re.search(r"image: (postgres\S+)", COMPOSE_FILE.read_text()).group(1)
    for image in [*bases, nginx]:
        assert re.search(r":\d+\.\d+\.\d+", image), f"{image} is not pinned to a version"
    assert re.search(r":\d+\.\d+-", postgres), f"{postgres} is not pinned to a version"  # PostgreSQL's have two parts
    # Both Python targets switch to the unprivileged user before their CMD; Nginx's image is unprivileged.
    assert dockerfile.count("USER app") == 2
    assert nginx.startswith("nginxinc/nginx-unprivileged:")


def test_nginx_template_variables_are_all_set_by_compose(compose):
    template = (ROOT / "nginx" / "templates" / "default.conf.template").read_text()
    variables = set(re.findall(r"\$\{(\w+)\}", template))
    assert variables <= set(compose["services"]["nginx"]["environment"])


def test_dockerignore_admits_only_the_code():
    lines = (ROOT / ".dockerignore").read_text().split("\n")
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "**"  # everything out, then the few paths the images need back in
    assert not [rule for rule in rules if rule.startswith("!") and rule[1:].startswith(("checkpoints", "runs", "data"))]


def test_the_replicas_share_one_postgres_gallery_and_can_scale(compose):
    services = compose["services"]
    api, postgres = services["api"], services["postgres"]
    database = urlsplit(api["environment"]["CLIP_DATABASE_URL"])
    assert (database.scheme, database.hostname, database.port, database.path) == (
        "postgresql",
        "postgres",
        5432,
        "/clip",
    )
    environment = postgres["environment"]
    assert (database.username, database.password) == (environment["POSTGRES_USER"], environment["POSTGRES_PASSWORD"])
    assert environment["POSTGRES_DB"] == "clip"
    # Its data in a named volume; its healthcheck asks the server itself, which api waits for.
    assert any(str(volume).startswith("postgres-data") for volume in postgres["volumes"])
    assert "postgres-data" in compose["volumes"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    # `--scale api=3` needs an api with no fixed name and no published port; Nginx's upstream names
    # the service, which resolves to every replica.
    assert "container_name" not in api and not api.get("ports")
    assert not postgres.get("ports")

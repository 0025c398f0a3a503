"""The deployment files: s.yaml against the fc3 schema, src/.fcignore, events/.

Runs on python3.10 without PyAV. Needs PyYAML and jsonschema for the s.yaml
checks (skipped, with the reason, where they are not installed). The fc3
schema and event templates live in the read-only shared folder beside the
repository (`../shared`); the checks that need them skip when it is absent.
"""

from __future__ import annotations

import ast
import base64
import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"
SCHEMA_PATH = SHARED_REFERENCE / "fc3-props.schema.json"
TEMPLATES = SHARED_REFERENCE / "fc3-event-templates"
EVENTS = REPO / "events"

# The event kinds that mean "a complete object now exists" (docs/deploy.md).
UPLOAD_EVENTS = {
    "oss:ObjectCreated:PutObject",
    "oss:ObjectCreated:PostObject",
    "oss:ObjectCreated:CopyObject",
    "oss:ObjectCreated:CompleteMultipartUpload",
}
# Stand-ins for what `s` resolves at deploy time.
ACCOUNT_ID = "1234567890123456"
ENVIRON: dict[str, str] = {}  # nothing set: `${env(NAME, default)}` resolves to its default

# The fc3 event templates as shipped (devsapp/fc3 at 4ca1c1b): parsers are
# tested against them, so they must stay byte for byte what fc3 ships.
TEMPLATE_SHA256 = {
    "mns-stream.json": "3aa782100e0e442e008248b8a6ad4fd4cde6f8bd3c978722f49b96f787a578d2",
    "mns-with-MessageAttributes.json": "8ac5d4c3483d5aff314429ca823fc01ed070d334433f26a2d0e5fe1f7ae888f1",
    "mns-without-MessageAttributes.json": "0d221d27ff14a16479fb368aecb2b6654e09823f361d9feebbf771ce6a8544de",
    "oss.json": "2780ea0d720789510b58ff55d1e8de476dded3cd168c01f3921c0227d43be2dd",
}

_MAGIC = re.compile(r"\$\{([^}]*)\}")
_ENV = re.compile(r"""env\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]*)['"]\s*)?\)""")


def _resolve(value: Any, variables: dict[str, Any]) -> Any:
    """Substitutes the Serverless Devs expressions this project uses; anything else fails."""
    if isinstance(value, dict):
        return {k: _resolve(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if expression.startswith("vars."):
            return str(variables[expression[len("vars."):]])
        if expression == "config('AccountID')":
            return ACCOUNT_ID
        env = _ENV.fullmatch(expression)
        if env:
            name, default = env.groups()
            if name in ENVIRON:
                return ENVIRON[name]
            assert default is not None, f"${{{expression}}} has no default and is not set"
            return default
        raise AssertionError(f"unexpected expression ${{{expression}}} in s.yaml")

    return _MAGIC.sub(substitute, value)


def _extend(template: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """Serverless Devs' `extend` (extend2, deep): maps merge, props win, lists are replaced."""
    merged = copy.deepcopy(template)
    for key, value in props.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _extend(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read s.yaml (dev extra)")
    return yaml.safe_load((REPO / "s.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def variables(spec: dict[str, Any]) -> dict[str, Any]:
    return _resolve(spec["vars"], {})


@pytest.fixture(scope="module")
def functions(spec: dict[str, Any], variables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each resource's props as fc3 receives them: template merged, expressions resolved."""
    resolved = {}
    for name, resource in spec["resources"].items():
        template_name = resource.get("extend", {}).get("name")
        template = spec.get("template", {})[template_name] if template_name else {}
        resolved[name] = _resolve(_extend(template, resource["props"]), variables)
    return resolved


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"fc3 schema not found at {SCHEMA_PATH} (the shared folder sits beside the repo)")
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _validator(schema: dict[str, Any], definition: str | None = None):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is needed to check s.yaml (dev extra)")
    target = schema if definition is None else {**schema["definitions"][definition],
                                                 "definitions": schema["definitions"]}
    return jsonschema.Draft7Validator(target)


def _trigger(props: dict[str, Any], trigger_type: str) -> dict[str, Any]:
    (trigger,) = [t for t in props["triggers"] if t["triggerType"] == trigger_type]
    return trigger


# --- s.yaml ---------------------------------------------------------------


def test_spec_is_edition_3_with_two_fc3_functions(spec: dict[str, Any]) -> None:
    assert str(spec["edition"]) == "3.0.0"
    assert spec["name"] == "autoanim"
    assert set(spec["resources"]) == {"on_upload", "on_task_result"}
    assert {r["component"] for r in spec["resources"].values()} == {"fc3"}
    assert set(spec["vars"]) >= {"region", "bucket", "input_prefix", "output_prefix", "imm_project",
                                 "topic", "role"}


def test_each_resource_validates_against_the_fc3_schema(functions, schema) -> None:
    validator = _validator(schema)
    for name, props in functions.items():
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(props)]
        assert not errors, f"{name}: {errors}"
        # The schema allows unknown properties, so a misspelt key would pass silently.
        assert set(props) <= set(schema["properties"]), f"{name}: unknown props {set(props) - set(schema['properties'])}"


def test_trigger_configs_validate_against_their_own_definitions(functions, schema) -> None:
    # ITrigger.triggerConfig is an anyOf of every kind; check each against its own.
    oss = _trigger(functions["on_upload"], "oss")["triggerConfig"]
    mns = _trigger(functions["on_task_result"], "mns_topic")["triggerConfig"]
    for config, definition in ((oss, "IOssTriggerConfig"), (mns, "IMnsTriggerConfig")):
        errors = [e.message for e in _validator(schema, definition).iter_errors(config)]
        assert not errors, f"{definition}: {errors}"


def test_handlers_and_runtime(functions, variables) -> None:
    assert functions["on_upload"]["handler"] == "index.on_upload"
    assert functions["on_task_result"]["handler"] == "index.on_task_result"
    for props in functions.values():
        assert props["runtime"] == "python3.10"
        assert props["code"] == "./src"
        assert props["environmentVariables"]["PYTHONPATH"] == "/code/python"
        assert props["role"] == f"acs:ram::{ACCOUNT_ID}:role/{variables['role']}"


def test_handlers_exist_in_src_index() -> None:
    tree = ast.parse((REPO / "src" / "index.py").read_text(encoding="utf-8"))
    handlers = {node.name: node.args for node in tree.body if isinstance(node, ast.FunctionDef)}
    for name in ("on_upload", "on_task_result"):
        assert name in handlers, f"src/index.py has no {name}"
        args = handlers[name]
        # FC calls handler(event, context); anything after those must be optional.
        assert [a.arg for a in args.args[:2]] == ["event", "context"], name
        assert len(args.defaults) >= len(args.args) - 2, name
        assert all(d is not None for d in args.kw_defaults), name


def test_oss_trigger_fires_on_complete_objects_under_the_input_prefix(functions, variables) -> None:
    trigger = _trigger(functions["on_upload"], "oss")
    config = trigger["triggerConfig"]
    assert set(config["events"]) == UPLOAD_EVENTS
    assert len(config["events"]) == len(UPLOAD_EVENTS)
    # No suffix filter: sidecars `<key>.anim.json` must trigger too.
    assert config["filter"]["key"] == {"prefix": variables["input_prefix"], "suffix": ""}
    assert trigger["sourceArn"] == f"acs:oss:{variables['region']}:{ACCOUNT_ID}:{variables['bucket']}"
    assert trigger["invocationRole"].startswith(f"acs:ram::{ACCOUNT_ID}:role/")


def test_outputs_never_match_the_upload_trigger(functions, variables) -> None:
    input_prefix, output_prefix = variables["input_prefix"], variables["output_prefix"]
    assert input_prefix.endswith("/") and output_prefix.endswith("/")
    assert not output_prefix.startswith(input_prefix)
    assert not input_prefix.startswith(output_prefix)
    for props in functions.values():
        assert props["environmentVariables"]["OUTPUT_PREFIX"] == output_prefix


def test_mns_trigger_subscribes_to_the_topic_imm_notifies(functions, variables) -> None:
    trigger = _trigger(functions["on_task_result"], "mns_topic")
    assert trigger["sourceArn"] == f"acs:mns:{variables['region']}:{ACCOUNT_ID}:/topics/{variables['topic']}"
    assert trigger["triggerConfig"] == {"notifyContentFormat": "JSON", "notifyStrategy": "BACKOFF_RETRY"}
    for props in functions.values():
        env = props["environmentVariables"]
        assert env["IMM_NOTIFY_TOPIC"] == variables["topic"]
        assert env["IMM_PROJECT"] == variables["imm_project"]
        assert env["AUTOANIM_BACKEND"] == "imm"


def test_async_retries_are_bounded_and_dead_letters_avoid_the_result_topic(functions, variables) -> None:
    for name, props in functions.items():
        config = props["asyncInvokeConfig"]
        assert 1 <= config["maxAsyncRetryAttempts"] <= 8, name  # bounded (FC's own maximum is 8)
        assert 0 < config["maxAsyncEventAgeInSeconds"] <= 86400, name
        destination = config["destinationConfig"]["onFailure"]["destination"]
        assert destination.startswith(f"acs:mns:{variables['region']}:{ACCOUNT_ID}:/topics/"), name
        assert f"/topics/{variables['topic']}/" not in destination, f"{name}: failures would loop into results"


def test_on_upload_runs_in_async_task_mode_so_fc_refuses_a_repeated_backfill(functions) -> None:
    # `autoanim backfill --submit` names each invocation; FC deduplicates names only in task mode.
    upload = functions["on_upload"]["asyncInvokeConfig"]
    assert upload["asyncTask"] is True
    assert upload["destinationConfig"]["onFailure"]["destination"]  # still merged from the template
    assert "asyncTask" not in functions["on_task_result"]["asyncInvokeConfig"]


def test_sizes_and_timeouts(functions) -> None:
    """What the code relies on: a claim's lease outlives its holder, and FC's limits are kept."""
    from autoanim.config import Settings

    for function in functions.values():
        assert function["memorySize"] >= 128 and function["memorySize"] % 64 == 0  # FC's own rule
        assert 0 < function["timeout"] < Settings().claim_timeout  # a crashed holder's lease expires
    result, upload = functions["on_task_result"], functions["on_upload"]
    assert result["environmentVariables"]["AUTOANIM_STATUS_TAG"] == "true"
    assert "AUTOANIM_STATUS_TAG" not in upload["environmentVariables"]


def test_pre_deploy_installs_requirements_for_the_fc_platform(spec: dict[str, Any]) -> None:
    """The wheels of requirements.txt for FC's python3.10 on x86_64 Linux, into <code>/python."""
    import shlex

    for hook in ("pre-deploy", "pre-local"):
        (step,) = spec["actions"][hook]
        words = shlex.split(step["run"])
        pip = words[words.index("pip"):]
        assert pip[1] == "install", hook

        def value(flag: str, pip: list[str] = pip) -> str:  # `--flag value` or `--flag=value`
            joined = [w.split("=", 1)[1] for w in pip if w.startswith(flag + "=")]
            return joined[0] if joined else pip[pip.index(flag) + 1]

        src = REPO / step["path"]
        assert (src / value("-r")).resolve() == (REPO / "requirements.txt").resolve(), hook
        assert (src / value("-t")).resolve() == (REPO / "src" / "python").resolve(), hook  # PYTHONPATH /code/python
        assert "x86_64" in value("--platform") and value("--platform").startswith("manylinux"), hook
        assert value("--python-version") == "3.10" and value("--implementation") == "cp", hook
        assert "--only-binary=:all:" in pip, hook  # wheels only: nothing is compiled for another machine


def test_no_secrets_in_s_yaml() -> None:
    text = (REPO / "s.yaml").read_text(encoding="utf-8")
    assert not re.search(r"LTAI[0-9A-Za-z]{12,}", text)
    assert not re.search(r"(?i)(access_?key_?(id|secret)|security_?token)\s*:", text)


# --- src/.fcignore ------------------------------------------------------------


def test_fcignore_leaves_offline_code_and_caches_out() -> None:
    rules = {line.strip() for line in (REPO / "src" / ".fcignore").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")}
    assert {"autoanim/engine", "__pycache__", "tests", ".env"} <= rules
    assert not {"python", "autoanim", "index.py"} & rules


def test_no_test_support_is_shipped_to_fc() -> None:
    """The loopback emulators are test support: nothing under src/ (FC's code) imports or holds them."""
    shipped = [p for p in (REPO / "src").rglob("*.py") if "engine" not in p.parts]
    assert not [p for p in shipped if "emulator" in p.name or "tests.support" in p.read_text(encoding="utf-8")]


# --- events/ ------------------------------------------------------------------


def _events() -> list[Path]:
    return sorted(EVENTS.glob("*.json"))


def test_events_folder_has_every_sample() -> None:
    names = {p.name for p in _events()}
    assert names >= {
        "oss-put-tagged.json", "oss-multipart-unicode.json", "oss-sidecar.json", "oss-output-prefix.json",
        "oss-batch.json", "oss-not-video.json", "mns-imm-succeeded.json", "mns-imm-failed.json",
        "mns-imm-succeeded-base64.json", "mns-imm-succeeded-attrs.json", "mns-imm-stream.json",
        "mns-imm-stream-raw.json", "mns-imm-failed-retryable.json",
    }
    readme = (EVENTS / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in names)


@pytest.mark.parametrize("path", _events(), ids=lambda p: p.name)
def test_every_event_file_is_json(path: Path) -> None:
    json.loads(path.read_bytes())  # FC hands the handler bytes


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


@pytest.mark.parametrize("path", sorted(EVENTS.glob("oss-*.json")), ids=lambda p: p.name)
def test_oss_events_have_the_shape_fc_delivers(path: Path) -> None:
    if not (TEMPLATES / "oss.json").is_file():
        pytest.skip(f"fc3 event templates not found at {TEMPLATES}")
    (template,) = json.loads((TEMPLATES / "oss.json").read_bytes())["events"]
    entries = json.loads(path.read_bytes())["events"]
    assert entries
    for entry in entries:
        expected = _shape(template)
        if entry["eventName"].startswith("ObjectRemoved:"):
            del expected["oss"]["object"]["eTag"]
        assert _shape(entry) == expected
        assert not entry["eventName"].startswith("oss:")  # payload names carry no `oss:` prefix


def _envelope_text(event: Any, raw: bytes) -> str:
    if isinstance(event, dict) and "Message" in event:
        body = event["Message"]
        assert event["MessageMD5"] == hashlib.md5(body.encode()).hexdigest().upper()
    elif isinstance(event, dict) and "body" in event:
        body = event["body"]
    else:
        body = raw.decode()
    try:
        json.loads(body)
        return body
    except ValueError:
        return base64.b64decode(body, validate=True).decode()


@pytest.mark.parametrize("path", sorted(EVENTS.glob("mns-*.json")), ids=lambda p: p.name)
def test_mns_events_carry_an_imm_envelope_tied_back_by_user_data(path: Path) -> None:
    raw = path.read_bytes()
    envelope = json.loads(_envelope_text(json.loads(raw), raw))
    assert envelope["source"] == "acs.imm" and envelope["type"] == "imm:Task:MediaConvert"
    content = json.loads(envelope["content"])
    assert content["TaskType"] == "MediaConvert" and content["ProjectName"] == "test-project"
    assert content["Status"] in {"Succeeded", "Failed"}
    assert bool(content["Code"]) == (content["Status"] == "Failed")
    user_data = json.loads(content["UserData"])
    assert user_data["src"] == content["Sources"][0]["URI"]
    assert re.fullmatch(r"oss://test-bucket/animated/\.autoanim/claims/[0-9a-f]{64}\.json", user_data["claim"])
    assert len(content["UserData"].encode()) <= 2048
    (animation,) = content["Targets"][0]["Image"]["Animations"]
    assert animation["URI"].startswith("oss://test-bucket/animated/")


def test_base64_event_is_base64() -> None:
    message = json.loads((EVENTS / "mns-imm-succeeded-base64.json").read_bytes())["Message"]
    with pytest.raises(ValueError):
        json.loads(message)
    json.loads(base64.b64decode(message, validate=True))


def test_fc3_event_templates_are_untouched() -> None:
    if not TEMPLATES.is_dir():
        pytest.skip(f"fc3 event templates not found at {TEMPLATES}")
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in TEMPLATES.glob("*.json")}
    assert found == TEMPLATE_SHA256

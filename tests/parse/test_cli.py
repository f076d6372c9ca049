"""`falcoir parse` through CliRunner: stdout, stderr and exit codes apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from falcoir.cli.app import app
from falcoir.cli.parse import ParseArgs, parse_args
from falcoir.errors import InputError
from falcoir.render.output import OutputFormat

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "alerts"
runner = CliRunner()

ALERT = (
    "10:14:03.412758113: Critical Possible miner running (command=/tmp/xmrig -o "
    "stratum+tcp://pool.example.com:3333 pid=48213 container_id=3c1f0d9be2a4 "
    "image=docker.io/library/ubuntu) k8s.ns=default k8s.pod=miner-6d5f8 container=3c1f0d9be2a4"
)
JSON_ALERT = json.dumps(
    {
        "hostname": "node-1",
        "output": "10:14:04.100220931: Notice Conn (command=xmrig "
        "connection=10.0.0.1:1->1.2.3.4:3333)",
        "priority": "Notice",
        "rule": "Unexpected outbound connection destination",
        "time": "2026-03-02T10:14:04.100220931Z",
        "output_fields": {"proc.pid": 48213, "fd.name": "10.0.0.1:1->1.2.3.4:3333"},
    }
)


def test_json_output_is_a_list_on_stdout_only() -> None:
    result = runner.invoke(app, ["parse", ALERT, "-o", "json"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    docs = json.loads(result.stdout)
    assert isinstance(docs, list) and len(docs) == 1
    doc = docs[0]
    assert doc["priority"] == "Critical"
    assert doc["process"]["pid"] == 48213
    assert doc["process"]["cmdline"] == "/tmp/xmrig -o stratum+tcp://pool.example.com:3333"
    assert doc["container"]["id"] == "3c1f0d9be2a4"
    assert doc["k8s"] == {"namespace": "default", "pod": "miner-6d5f8", "pod_uid": None}
    # the stable keys of product.md
    for key in (
        "time",
        "priority",
        "rule",
        "message",
        "source_format",
        "fields",
        "process",
        "container",
        "k8s",
        "node",
        "connection",
    ):
        assert key in doc
    for key in ("name", "cmdline", "pid", "vpid", "exepath", "cwd", "user", "parent"):
        assert key in doc["process"]
    for key in ("id", "full_id", "name", "image"):
        assert key in doc["container"]


def test_jsonl_one_alert_per_line() -> None:
    result = runner.invoke(app, ["parse", ALERT, JSON_ALERT, "-o", "jsonl"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    a, b = (json.loads(x) for x in lines)
    assert a["line"] == 1 and b["line"] == 2
    assert b["rule"] == "Unexpected outbound connection destination"
    assert b["node"] == "node-1"
    assert b["connection"]["server_port"] == 3333


def test_yaml_output() -> None:
    result = runner.invoke(app, ["parse", ALERT, "--output=yaml"])
    assert result.exit_code == 0, result.stderr
    docs = yaml.safe_load(result.stdout)
    assert docs[0]["process"]["pid"] == 48213


def test_table_goes_to_stderr_and_stdout_stays_empty() -> None:
    result = runner.invoke(app, ["parse", ALERT])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "Critical" in result.stderr
    assert "48213" in result.stderr
    assert "1 alert" in result.stderr


def test_table_neutralises_control_characters_and_markup() -> None:
    hostile = (
        "10:00:00.000000001: Critical Evil (command=sh -c \x1b[2J\x1b]0;pwned\x07 "
        "[bold red]fake[/] pid=1 container_id=3c1f0d9be2a4)"
    )
    result = runner.invoke(app, ["parse", hostile])
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stderr
    assert "\x07" not in result.stderr
    assert "\\x1b" in result.stderr
    assert "[bold" in result.stderr  # shown literally, not interpreted as markup


def test_stdin_with_dash_f_and_implicit() -> None:
    text = "Events detected: 1\n" + ALERT + "\n"
    for args in (["parse", "-f", "-", "-o", "json"], ["parse", "-o", "json"]):
        result = runner.invoke(app, args, input=text)
        assert result.exit_code == 0, result.stderr
        assert len(json.loads(result.stdout)) == 1


def test_file_with_mixed_formats_and_a_bad_line(tmp_path: Path) -> None:
    f = tmp_path / "alerts.log"
    pretty = json.dumps(json.loads(JSON_ALERT), indent=2)
    f.write_text(f"{ALERT}\nnot an alert at all\n{pretty}\nEvents detected: 2\n")
    result = runner.invoke(app, ["parse", "-f", str(f), "-o", "json"])
    assert result.exit_code == 0
    docs = json.loads(result.stdout)
    assert [d["line"] for d in docs] == [1, 3]
    assert "line 2" in result.stderr
    assert "not a Falco alert" in result.stderr


def test_nothing_parsed_is_exit_2() -> None:
    result = runner.invoke(app, ["parse", "hello world", "-o", "json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no Falco alert found" in result.stderr
    assert "line 1" in result.stderr


def test_only_falco_log_lines_is_exit_2_and_says_skipped() -> None:
    result = runner.invoke(app, ["parse", "-o", "json"], input="Events detected: 0\n")
    assert result.exit_code == 2
    assert "1 lines skipped" in result.stderr


def test_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["parse", "-f", str(tmp_path / "nope.txt")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_bad_options_are_exit_2() -> None:
    for args in (["parse", ALERT, "-o", "xml"], ["parse", ALERT, "--nope"], ["parse", "-f"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert result.stdout == ""
        assert "error" in result.stderr


def test_rules_file_names_the_rule_and_splits_exactly() -> None:
    alert = (EXAMPLES / "text-rules-template.txt").read_text()
    result = runner.invoke(
        app,
        [
            "parse",
            "-f",
            str(EXAMPLES / "text-rules-template.txt"),
            "--rules",
            str(EXAMPLES / "rules-cryptominer.yaml"),
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    (doc,) = json.loads(result.stdout)
    assert doc["rule"] == "Miner pool connection"
    assert doc["process"]["cmdline"] == "/tmp/xmrig -o pool.example.com:3333 --rig-id a=b, c user=x"
    assert doc["process"]["user"] == "root"
    assert alert.strip() == doc["raw"]


def test_bad_rules_yaml_is_exit_2_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad_rules.yaml"
    bad.write_text("- rule: x\n  output: [unclosed\n")
    result = runner.invoke(app, ["parse", ALERT, "--rules", str(bad)])
    assert result.exit_code == 2
    assert "bad_rules.yaml" in result.stderr
    assert "YAML" in result.stderr


def test_help_lists_the_contract_options() -> None:
    result = runner.invoke(app, ["parse", "--help"])
    assert result.exit_code == 0
    for opt in ("--file", "--rules", "--output", "table|json|jsonl|yaml"):
        assert opt in result.stdout


def test_double_dash_ends_options() -> None:
    result = runner.invoke(app, ["parse", "-o", "json", "--", ALERT])
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ParseArgs()),
        (["a", "b"], ParseArgs(alerts=("a", "b"))),
        (["-f", "-"], ParseArgs(file=Path("-"))),
        (["--file=x.log", "-ojsonl"], ParseArgs(file=Path("x.log"), output=OutputFormat.JSONL)),
        (["--rules", "r.yaml", "a"], ParseArgs(alerts=("a",), rules=Path("r.yaml"))),
        (["--", "-o"], ParseArgs(alerts=("-o",))),
    ],
)
def test_parse_args(argv: list[str], expected: ParseArgs) -> None:
    assert parse_args(argv) == expected


def test_parse_args_rejects_unknown() -> None:
    with pytest.raises(InputError):
        parse_args(["-x"])


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env


def test_parse_never_imports_kubernetes_or_aiohttp() -> None:
    script = (
        "import sys, json\n"
        "from falcoir.cli.app import app\n"
        "try:\n"
        "    app(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n"
        "    heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'kubernetes', 'aiohttp', 'rich', 'urllib3', 'yaml'})\n"
        "    print(json.dumps(heavy), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, "parse", ALERT, "-o", "json"],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout)[0]["process"]["pid"] == 48213
    heavy = json.loads(out.stderr.strip().splitlines()[-1])
    # JSON output needs none of them; the table path imports rich, nothing else.
    assert heavy == []


def test_parse_as_a_process_with_python_dash_m() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "falcoir",
            "parse",
            "-f",
            str(EXAMPLES / "walkthrough.txt"),
            "-o",
            "jsonl",
        ],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["process"] == {
        "name": "xmrig",
        "cmdline": "/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x",
        "pid": 12345,
        "vpid": None,
        "exepath": None,
        "cwd": None,
        "user": None,
        "parent": None,
        "ppid": None,
    }


def test_read_one_alert_uses_this_parser(tmp_path: Path) -> None:
    from falcoir.cli.common import read_one_alert

    a = read_one_alert(ALERT, None)
    assert a.process.pid == 48213
    f = tmp_path / "two.log"
    f.write_text(ALERT + "\n" + JSON_ALERT + "\n")
    b = read_one_alert(None, f)
    assert b.rule == "Unexpected outbound connection destination"  # the last one
    with pytest.raises(InputError, match="no Falco alert found"):
        read_one_alert("garbage", None)


def test_reader_leaving_early_is_not_an_error(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    big.write_text((ALERT + "\n") * 20000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "falcoir", "parse", "-f", str(big), "-o", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_subprocess_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert json.loads(first)["process"]["pid"] == 48213
    assert "Traceback" not in err

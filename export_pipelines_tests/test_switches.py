"""The on/off environment switches (export_pipelines/switches.py): every one takes 0/false/no/off and
1/true/yes/on in any case, refuses anything else naming the variable and the words, and a wrong
value is one ERROR line from the command line, not a traceback."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import export_pipelines
from export_pipelines.cli import main
from export_pipelines.definitions import build_definitions
from export_pipelines.delivery_settings import redirect_from_environment
from export_pipelines.spec.loader import bundled_demo_config, load_config
from export_pipelines.stages.arrow_extract import fast_extract_enabled
from export_pipelines.stages.lines_alongside import format_while_extracting_enabled
from export_pipelines.stages.mapping import mapping_shortcut_enabled
from export_pipelines.stages.write_behind import write_behind_enabled

PACKAGE = Path(export_pipelines.__file__).parent
NOT_THE_DEMO = Path("/nonexistent/config")
# Each switch as the code reads it; the redirect's default (unset) is off for a config folder that is not the demo.
READERS = {
    "EXPORT_FAST_EXTRACT": fast_extract_enabled,
    "EXPORT_MAPPING_SHORTCUT": mapping_shortcut_enabled,
    "EXPORT_FORMAT_WHILE_EXTRACTING": format_while_extracting_enabled,
    "EXPORT_WRITE_BEHIND": write_behind_enabled,
    "EXPORT_REDIRECT_TO_DOWNLOAD": lambda: redirect_from_environment(NOT_THE_DEMO, bundled_demo_config()),
}
SWITCH_NAMES = [*READERS, "EXPORT_SFTP_LARGE_WRITES"]


@pytest.mark.parametrize("variable", list(READERS))
@pytest.mark.parametrize(
    "value, on",
    [("0", False), ("false", False), ("No", False), (" OFF ", False), ("1", True), ("TRUE", True), ("yes", True), ("On", True)],
)
def test_every_switch_reads_the_same_words(monkeypatch, variable, value, on):
    monkeypatch.setenv(variable, value)
    assert READERS[variable]() is on


@pytest.mark.parametrize("variable, default", [("EXPORT_FAST_EXTRACT", True), ("EXPORT_REDIRECT_TO_DOWNLOAD", False)])
@pytest.mark.parametrize("value", [None, ""])
def test_an_unset_switch_keeps_its_default(monkeypatch, variable, default, value):
    if value is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, value)
    assert READERS[variable]() is default


@pytest.mark.parametrize("variable", list(READERS))
def test_any_other_value_is_refused_naming_the_variable_and_the_words(monkeypatch, variable):
    monkeypatch.setenv(variable, "flase")
    with pytest.raises(ValueError) as refused:
        READERS[variable]()
    message = str(refused.value)
    assert message.startswith(f"{variable}='flase'")
    for word in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        assert f" {word}," in message or f" {word} " in message


def test_no_module_reads_a_switch_by_its_own_comparison():
    """A switch compared with "0" (or "1") where it is read takes only that word: every reading goes
    through switches.switch_from_environment, so the names live in switches.py alone."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "switches.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in SWITCH_NAMES:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} names {node.value}")
            if isinstance(node, ast.Compare) and any(_reads_environment(part) for part in (node.left, *node.comparators)):
                if any(isinstance(part, ast.Constant) and part.value in ("0", "1") for part in (node.left, *node.comparators)):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} compares an environment value with 0 or 1")
    assert offenders == []


def _reads_environment(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "getenv")


@pytest.mark.parametrize("variable", SWITCH_NAMES)
def test_a_wrong_switch_is_one_line_from_validate_and_run_and_fails_the_load(monkeypatch, tmp_path, capsys, variable):
    monkeypatch.setenv(variable, "maybe")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    expected = f"ERROR {variable}='maybe' is not a switch value: write 1, true, yes or on to turn it on"
    assert main(["validate"]) == 1
    validated = capsys.readouterr()
    assert expected in validated.out and "1 setting(s) to fix" in validated.out and "Traceback" not in validated.err
    assert main(["run", "any_export"]) == 1
    ran = capsys.readouterr()
    assert ran.out.startswith(expected) and len(ran.out.splitlines()) == 1 and "Traceback" not in ran.err
    with pytest.raises(ValueError, match=f"^{variable}='maybe' is not a switch value"):
        build_definitions(load_config(bundled_demo_config()))

"""A connection's `root` confines every path, spec or ad-hoc: `..`, an absolute path outside the
root, and a link on the server pointing out are refused before anything is written; on S3 every
key stays under the prefix. Real sshd and vsftpd, links made on the server's disk."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from export_pipelines.adhoc.job import build_adhoc_job
from export_pipelines.naming import ADHOC_PLAN_OP
from export_pipelines.spec.loader import load_config
from export_pipelines.targets.base import DeliveryError
from export_pipelines_tests.conftest import export_resources, write_config
from export_pipelines_tests.sample_data import create_sample_tables
from export_pipelines_tests.servers.fixtures import s3_client
from export_pipelines_tests.servers.system_user import owned_folder
from export_pipelines_tests.targets.delivery_helpers import Log, local_file, make_target
from export_pipelines_tests.targets.partners import open_partner
from export_pipelines_tests.targets.test_s3 import s3_connection


def tree(folder: Path) -> list[str]:
    """Every file and folder below `folder`, links not followed, as relative paths."""
    found = []
    for base, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            found.append(os.path.relpath(os.path.join(base, name), folder))
    return sorted(found)


@pytest.fixture(params=["sftp", "ftps"])
def server_with_links(request, monkeypatch):
    """A partner folder holding `root/` (with a link `escape -> ../outside`, a link `inside -> sub`
    and a link `to_tmp -> /tmp/<name>`) and `outside/`, on sshd or vsftpd."""
    partner = open_partner(request.param, request, monkeypatch)
    base = partner.home
    root = owned_folder(base, "root")
    owned_folder(root, "sub")
    outside = owned_folder(base, "outside")
    elsewhere = owned_folder(Path("/tmp"), f"{base.name}_elsewhere")
    (root / "escape").symlink_to("../outside")
    (root / "inside").symlink_to("sub")
    (root / "to_tmp").symlink_to(elsewhere)
    yield partner, root, outside, elsewhere
    for path in sorted(elsewhere.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    elsewhere.rmdir()


def with_root(partner, root: str | None) -> dict:
    return {**partner.connection, "root": root} if root is not None else dict(partner.connection)


@pytest.mark.parametrize("root_style", ["absolute", "relative to the login folder"])
@pytest.mark.parametrize(
    ("path", "lands_in"),
    [
        ("", ""),
        ("daily", "daily"),
        ("daily/eu", "daily/eu"),
        ("inside/eu", "sub/eu"),  # a link that stays inside the root
        ("ROOT/daily", "daily"),  # an absolute path inside the root
    ],
)
def test_paths_inside_the_root_are_delivered_there(server_with_links, root_style, path, lands_in, tmp_path):
    partner, root, _, _ = server_with_links
    root_setting = str(root) if root_style == "absolute" else f"{partner.folder}/root"
    target = make_target(with_root(partner, root_setting), path.replace("ROOT", str(root)))
    target.deliver([local_file(tmp_path, "a.csv", b"a\r\n")], Log())
    assert (root / lands_in / "a.csv").read_bytes() == b"a\r\n"


@pytest.mark.parametrize(
    ("path", "refusal"),
    [
        ("OUTSIDE", "outside the connection's root folder"),  # absolute, outside
        ("OUTSIDE/deeper", "outside the connection's root folder"),
        ("ELSEWHERE", "outside the connection's root folder"),  # absolute, far outside
        ("escape", "(a link)"),  # root/escape -> ../outside
        ("escape/deeper/still", "(a link)"),
        ("to_tmp", "(a link)"),  # root/to_tmp -> /tmp/...
        ("inside/../../outside", "must not contain '..' segments"),
    ],
)
def test_a_path_leaving_the_root_is_refused_before_anything_is_written(server_with_links, path, refusal, tmp_path):
    partner, root, outside, elsewhere = server_with_links
    before = tree(partner.home), tree(elsewhere)
    connection = with_root(partner, str(root))
    with pytest.raises(DeliveryError) as failure:
        make_target(connection, path.replace("OUTSIDE", str(outside)).replace("ELSEWHERE", str(elsewhere))).deliver(
            [local_file(tmp_path, "a.csv", b"a")], Log()
        )
    assert refusal in str(failure.value)
    assert (tree(partner.home), tree(elsewhere)) == before  # no file, no folder, anywhere


def test_without_a_root_the_login_folder_confines(server_with_links, tmp_path):
    partner, root, outside, elsewhere = server_with_links
    make_target(with_root(partner, None), f"{partner.folder}/outside/in").deliver([local_file(tmp_path, "a.csv", b"a")], Log())
    assert (outside / "in" / "a.csv").read_bytes() == b"a"
    with pytest.raises(DeliveryError, match="outside the connection's root folder"):
        make_target(with_root(partner, None), str(elsewhere)).deliver([local_file(tmp_path, "b.csv", b"b")], Log())
    assert tree(elsewhere) == []


def test_root_slash_opens_the_whole_server(server_with_links, tmp_path):
    partner, _, _, elsewhere = server_with_links
    make_target(with_root(partner, "/"), str(elsewhere)).deliver([local_file(tmp_path, "a.csv", b"a")], Log())
    assert (elsewhere / "a.csv").read_bytes() == b"a"


def test_a_root_that_is_not_there_is_refused(server_with_links, tmp_path):
    partner, root, _, _ = server_with_links
    with pytest.raises(DeliveryError, match=f"root folder {root}/missing is not a folder"):
        make_target(with_root(partner, f"{root}/missing"), "x").deliver([local_file(tmp_path, "a.csv", b"a")], Log())
    assert not (root / "missing").exists()


def test_s3_keys_stay_under_the_prefix(moto_endpoint, s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPORTS_AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("EXPORTS_AWS_SECRET_ACCESS_KEY", "testing")
    connection = s3_connection(moto_endpoint, s3_bucket, prefix="partner/")
    for path in ["/etc", "/", "/daily/eu/"]:
        make_target(connection, path).deliver([local_file(tmp_path, "a.csv", b"a")], Log())
    keys = sorted(item["Key"] for item in s3_client(moto_endpoint).list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == ["partner/a.csv", "partner/daily/eu/a.csv", "partner/etc/a.csv"]


# --- the ad-hoc API: a caller writes only under the root ----------------------------------------------


def run_adhoc(partner, root: Path, path: str, tmp_path: Path) -> dg.ExecuteInProcessResult:
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    if not (tmp_path / "source.sqlite").exists():
        create_sample_tables(source)
    connections = {"connections": {"partner": with_root(partner, str(root))}}
    job = build_adhoc_job(load_config(write_config(tmp_path / "config", [], connections=connections)))
    request = {"exported_object": "customer", "fields": ["source_id"], "order": ["source_id"], "target": "partner", "path": path}
    instance_dir = tmp_path / "instance"
    instance_dir.mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(instance_dir)) as instance:
        return job.execute_in_process(
            run_config={"ops": {ADHOC_PLAN_OP: {"config": request}}},
            resources=export_resources(source),
            instance=instance,
            raise_on_error=False,
        )


def failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {event.step_key: event.step_failure_data.error.message for event in result.get_step_failure_events()}


@pytest.mark.parametrize(
    ("path", "step", "refusal"),
    [
        ("OUTSIDE", "deliver", "outside the connection's root folder"),
        ("ELSEWHERE", "deliver", "outside the connection's root folder"),
        ("escape/x", "deliver", "(a link)"),
        ("../outside", "adhoc_plan", "must not contain '..' segments"),
    ],
)
def test_an_adhoc_request_cannot_write_outside_the_root(server_with_links, path, step, refusal, tmp_path):
    partner, root, outside, elsewhere = server_with_links
    before = tree(partner.home), tree(elsewhere)
    result = run_adhoc(partner, root, path.replace("OUTSIDE", str(outside)).replace("ELSEWHERE", str(elsewhere)), tmp_path)
    assert not result.success
    [(failed_step, message)] = failures(result).items()
    assert failed_step == step and refusal in message, message
    assert (tree(partner.home), tree(elsewhere)) == before


def test_an_adhoc_request_inside_the_root_is_delivered(server_with_links, tmp_path):
    partner, root, _, _ = server_with_links
    result = run_adhoc(partner, root, "requests/42", tmp_path)
    assert result.success, failures(result)
    [delivered] = (root / "requests" / "42").iterdir()
    lines = delivered.read_text().splitlines()
    assert lines == ["source_id", "C-001", "C-002", "C-003", "C-004", "C-005"]

"""export-pipelines subcommands for ad-hoc exports (create, status, download, serve-downloads)
and for the configured ones (clone, list). Heavy imports wait until a command runs."""

from __future__ import annotations

import argparse
import functools
import json
import os
import urllib.error
from collections.abc import Callable
from pathlib import Path

URL_ENV_VAR = "EXPORT_PIPELINES_URL"
DEFAULT_DOWNLOADS_PORT = 8765


def _reporting_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A refused request, an unknown id or an unreachable webserver is one ERROR line, not a traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from export_pipelines.api.client import ExportApiError
        from export_pipelines.api.filter_text import FilterTextError

        try:
            return command(args)
        except (ExportApiError, FilterTextError, ValueError, TimeoutError) as error:
            print(f"ERROR {error}")
        except urllib.error.URLError as error:
            print(f"ERROR cannot reach the webserver at {args.url}: {error.reason}")
        return 1

    return run


def refusing_wrong_settings(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """For a command that loads the code location (builds its definitions or runs its jobs): a setting
    it would refuse (code_location.environment_problems: $EXPORT_WORK_URL, $EXPORT_DOWNLOADS_STORE_URL,
    $EXPORT_EXECUTOR, a switch) is one ERROR line each and exit 1, before anything is read or written,
    not a traceback from the middle of the command."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from export_pipelines.code_location import environment_problems

        settings = environment_problems()
        for problem in settings:
            print(f"ERROR {problem}")
        return 1 if settings else command(args)

    return run


def _client(args: argparse.Namespace):
    from export_pipelines.api.client import ExportsClient

    return ExportsClient(args.url)


@_reporting_errors
def cmd_create(args: argparse.Namespace) -> int:
    from export_pipelines.api.filter_text import parse_filters
    from export_pipelines.spec.loader import load_config

    parameters = {
        "fields": [field.strip() for field in args.fields.split(",") if field.strip()],
        "filters": parse_filters(args.filter, args.junction),
        "order": [key.strip() for key in args.order.split(",")] if args.order else None,
        "format": args.format,
        "compression": args.compression,
        "max_rows_per_file": args.max_rows_per_file,
        "target": args.target,
    }
    client = _client(args)
    # The request is checked against the config folder the code location loads before anything is launched.
    check_with = None if args.no_check else load_config(_config_root(args))
    export_id = client.create(args.exported_object, parameters, channel="CLI", user_id=args.user_id, check_with=check_with)
    if not args.wait:
        print(export_id)
        return 0
    export = client.wait(export_id, timeout=args.timeout)
    print(json.dumps(export, indent=2))
    return 0 if export["status"] == "DONE" else 1


@_reporting_errors
def cmd_status(args: argparse.Namespace) -> int:
    export = _client(args).get(args.export_id)
    print(json.dumps(export, indent=2))
    return 1 if export["status"] == "ERROR" else 0


@_reporting_errors
def cmd_download(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.wait:
        client.wait(args.export_id, timeout=args.timeout)
    for path in client.download(args.export_id, Path(args.dir)):
        print(path)
    return 0


def cmd_serve_downloads(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from export_pipelines.adhoc.download_server import serve_downloads
    from export_pipelines.targets.download_store import downloads_store_from_environment

    try:
        store = downloads_store_from_environment()
    except ValueError as error:
        print(f"ERROR {error}")
        return 1
    folder = store or Path(DagsterInstance.get().storage_directory()) / "downloads"
    server = serve_downloads(folder, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"Serving {folder} on http://{host}:{port}; set EXPORT_DOWNLOADS_URL=http://{host}:{port} for the code location")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _config_root(args: argparse.Namespace) -> Path:
    from export_pipelines.spec.loader import config_dir

    return Path(args.config).resolve() if args.config else config_dir()


@refusing_wrong_settings
def cmd_clone(args: argparse.Namespace) -> int:
    from export_pipelines.code_location import definition_problems
    from export_pipelines.spec.clone import CloneError, clone_spec, parse_assignment
    from export_pipelines.spec.loader import CONFIG_ENV_VAR, bundled_demo_config

    root = _config_root(args)
    if root.resolve() == bundled_demo_config().resolve():
        # The demo config is part of the installed package: a clone there is lost on reinstall.
        print(
            f"ERROR {root} is the bundled demo config, part of the installed package; clone into a config folder of "
            f"your own: copy it (cp -r {root} DIR), then set {CONFIG_ENV_VAR}=DIR (the code location reads it too) "
            f"or pass --config DIR"
        )
        return 1
    try:
        destination = clone_spec(root, args.name, args.new_name, [parse_assignment(text) for text in args.set], definition_problems)
    except CloneError as error:
        print(f"ERROR {error}")
        return 1
    print(f"Wrote {destination}; reload the code location to see exports/{args.new_name}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from export_pipelines.exports_list import format_listing, list_exports
    from export_pipelines.spec.loader import load_config

    config = load_config(_config_root(args))
    with DagsterInstance.get() as instance:
        print(format_listing(list_exports(config, instance, args.search)))
    return 0


def add_export_commands(commands) -> None:
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", help="config folder (default: EXPORT_PIPELINES_CONFIG or the bundled demo)")
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument(
        "--url", default=os.environ.get(URL_ENV_VAR, "http://127.0.0.1:3000"), help=f"dagster-webserver URL (default ${URL_ENV_VAR} or :3000)"
    )
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--wait", action="store_true", help="wait until the export is DONE or ERROR")
    waiting.add_argument("--timeout", type=float, default=600, help="seconds to wait (default 600)")

    create = commands.add_parser("create", parents=[url, waiting, config], help="start an ad-hoc export; prints its id")
    create.add_argument("exported_object", help="model name or alias: voucher, redemption, customer, ...")
    create.add_argument("--fields", required=True, help="comma-separated fields, e.g. code,voucher_type")
    create.add_argument("--filter", action="append", default=[], help="'FIELD OPERATOR VALUE[,VALUE]', repeatable")
    create.add_argument("--junction", choices=["and", "or"], default="and", help="how several filters combine")
    create.add_argument("--order", help="comma-separated fields; a leading - sorts descending (write --order=-created_at)")
    create.add_argument("--format", choices=["csv", "psv"], default="csv")
    create.add_argument("--compression", choices=["none", "gzip", "zstd", "zip"], default="none")
    create.add_argument("--max-rows-per-file", type=int, help="split the result into chunks of this many rows")
    create.add_argument("--target", default="download", help="download, or a connection name from connections.yaml")
    create.add_argument("--user-id", help="recorded with the export as user_id")
    create.add_argument(
        "--no-check", action="store_true", help="skip the local check of the request (a webserver that loads another config folder)"
    )
    create.set_defaults(handler=cmd_create)

    status = commands.add_parser("status", parents=[url], help="an ad-hoc export as JSON (Voucherify's export object)")
    status.add_argument("export_id")
    status.set_defaults(handler=cmd_status)

    download = commands.add_parser("download", parents=[url, waiting], help="fetch every chunk of a DONE export")
    download.add_argument("export_id")
    download.add_argument("--dir", default=".", help="folder to write the files into (default: current)")
    download.set_defaults(handler=cmd_download)

    serve = commands.add_parser("serve-downloads", help="serve the download folders read-only over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=DEFAULT_DOWNLOADS_PORT)
    serve.set_defaults(handler=cmd_serve_downloads)

    clone = commands.add_parser("clone", parents=[config], help="write a new spec from an existing export, with changes")
    clone.add_argument("name", help="the export to copy")
    clone.add_argument("new_name", help="the new export's name; its file is exports/NEW_NAME.yaml")
    clone.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change a key (dots for nesting), repeatable")
    clone.set_defaults(handler=cmd_clone)

    listing = commands.add_parser("list", parents=[config], help="the exports list with schedules, last runs and file sizes")
    listing.add_argument("--search", help="only exports whose name, model, target, owner or schedule contains this")
    listing.set_defaults(handler=cmd_list)

"""The code location as the processes that execute runs rebuild it: only the exports a run needs.

Dagster loads a code location in full once per code server (the UI, the daemon's schedules and
sensors read it there), and again in every process that executes a run or a step: the run
worker the code server spawns for each launched run (`dagster api execute_run` and its gRPC
equivalent), each step process of a multiprocess run, each Celery task's worker, and the command
line's own runs (local_runs.py). Those processes ask the repository for one job, with the run's
asset selection (RepositoryDefinition.get_maybe_subset_job_def, called by ReconstructableJob).
Dagster marks their load as DefinitionsLoadType.RECONSTRUCTION; then definitions.py hands them an
ExportRepository, which builds, for that request, the definitions of the exports it names and of
the exports they follow (`after`), reading only their spec files (loader.load_exports_of). So a
run's start-up does not grow with the number of exports in the folder.

Anything it cannot narrow (the all_exports job, a selection of invalid_exports assets, a spec
file not named after its export, any other call on the repository) gets the whole code
location, built once, as before: slower, never different.

Once a process has built its first job, what it has loaded (Dagster, the definitions) lives as
long as the process: freeze_loaded_objects takes it out of the garbage collector's scans.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet

import dagster as dg
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME, RepositoryData

from export_pipelines.naming import ADHOC_JOB, export_names_of_assets

logger = logging.getLogger("export_pipelines")

JOB_SUFFIX = "_job"  # naming.export_job_name


def exports_of_request(
    job_name: str, asset_selection: AbstractSet[dg.AssetKey] | None, asset_check_selection: AbstractSet[dg.AssetCheckKey] | None
) -> frozenset[str] | None:
    """The exports whose definitions a request for `job_name` (and the run's selection) needs, or
    None for the whole location. An export's own job needs that export; the ad-hoc job none;
    `__ASSET_JOB` (UI Materialize and backfills, `dagster asset materialize`) the selected exports."""
    keys = {*(asset_selection or ()), *(check.asset_key for check in asset_check_selection or ())}
    if job_name == ADHOC_JOB:
        return frozenset()
    if job_name == IMPLICIT_ASSET_JOB_NAME and keys:
        names = export_names_of_assets(keys)
        return frozenset(names) if len(names) == len(keys) else None
    if job_name.endswith(JOB_SUFFIX) and len(job_name) > len(JOB_SUFFIX):
        names = frozenset([job_name.removesuffix(JOB_SUFFIX)])
        return names if not keys or set(export_names_of_assets(keys)) <= names else None
    return None


class ExportRepository(dg.RepositoryDefinition):
    """The code location's repository (Dagster's one repository of a Definitions, same name),
    building on request only what the requested job needs; see the module's docstring.

    `build_all()` builds the whole location's Definitions; `build_only(names)` those of the
    exports `names` (and their upstreams), or None when it cannot.
    """

    def __init__(self, build_all: Callable[[], dg.Definitions], build_only: Callable[[frozenset[str]], dg.Definitions | None]):
        self._build_only = build_only
        self._narrow: dict[frozenset[str], dg.RepositoryDefinition | None] = {}
        super().__init__(SINGLETON_REPOSITORY_NAME, repository_data=_WholeOnDemand(build_all))

    def get_maybe_subset_job_def(
        self,
        job_name: str,
        op_selection: Iterable[str] | None = None,
        asset_selection: AbstractSet[dg.AssetKey] | None = None,
        asset_check_selection: AbstractSet[dg.AssetCheckKey] | None = None,
    ) -> dg.JobDefinition:
        job = self._job_def(job_name, op_selection, asset_selection, asset_check_selection)
        freeze_loaded_objects()
        return job

    def _job_def(
        self,
        job_name: str,
        op_selection: Iterable[str] | None,
        asset_selection: AbstractSet[dg.AssetKey] | None,
        asset_check_selection: AbstractSet[dg.AssetCheckKey] | None,
    ) -> dg.JobDefinition:
        names = exports_of_request(job_name, asset_selection, asset_check_selection)
        narrow = self._narrow_repository(names) if names is not None else None
        if narrow is not None and narrow.has_job(job_name):
            return narrow.get_maybe_subset_job_def(job_name, op_selection, asset_selection, asset_check_selection)
        logger.info("job %s: building the whole code location (its run's exports could not be told apart)", job_name)
        return super().get_maybe_subset_job_def(job_name, op_selection, asset_selection, asset_check_selection)

    def _narrow_repository(self, names: frozenset[str]) -> dg.RepositoryDefinition | None:
        if names not in self._narrow:
            try:
                defs = self._build_only(names)
            except Exception:  # noqa: BLE001 - the whole location is the answer that is never wrong
                logger.info("could not build only exports %s; loading the whole code location", sorted(names), exc_info=True)
                defs = None
            self._narrow[names] = defs.get_repository_def() if defs is not None else None
        return self._narrow[names]


def freeze_loaded_objects() -> None:
    """Move every object this process holds now into the garbage collector's permanent generation
    (gc.freeze), unless some already are: called when a process that executes runs or steps has
    built its first job, so what it loaded (Dagster's modules, the definitions) is in it.

    Those objects live as long as the process, yet each full collection the run's own work
    triggers would walk them all again (about 190 000 for one export's job). Frozen, they are
    never scanned again, and a process forked afterwards does not copy their memory pages by
    touching them (Python's documentation of gc.freeze). Reference counting still frees them; only
    a cycle among them is never collected, and a run process keeps them to its end anyway. A
    long-lived process's later jobs (a Celery worker's next tasks) are not frozen: they go when
    their task is done.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()


class _WholeOnDemand(RepositoryData):
    """The whole location's repository data, built at its first use: every call but the narrowed
    job requests lands here."""

    def __init__(self, build_all: Callable[[], dg.Definitions]):
        self._build_all = build_all
        self._data: RepositoryData | None = None

    @property
    def whole(self) -> RepositoryData:
        if self._data is None:
            # Definitions keeps its repository's data private; it is the data Dagster itself would use.
            self._data = self._build_all().get_repository_def()._repository_data  # noqa: SLF001
        return self._data

    def get_top_level_resources(self) -> Mapping[str, dg.ResourceDefinition]:
        return self.whole.get_top_level_resources()

    def get_env_vars_by_top_level_resource(self) -> Mapping[str, AbstractSet[str]]:
        return self.whole.get_env_vars_by_top_level_resource()

    def get_all_jobs(self) -> Sequence[dg.JobDefinition]:
        return self.whole.get_all_jobs()

    def get_job_names(self) -> Sequence[str]:
        return self.whole.get_job_names()

    def has_job(self, job_name: str) -> bool:
        return self.whole.has_job(job_name)

    def get_job(self, job_name: str) -> dg.JobDefinition:
        return self.whole.get_job(job_name)

    def get_schedule_names(self) -> Sequence[str]:
        return self.whole.get_schedule_names()

    def get_all_schedules(self) -> Sequence[dg.ScheduleDefinition]:
        return self.whole.get_all_schedules()

    def get_schedule(self, schedule_name: str) -> dg.ScheduleDefinition:
        return self.whole.get_schedule(schedule_name)

    def has_schedule(self, schedule_name: str) -> bool:
        return self.whole.has_schedule(schedule_name)

    def get_all_sensors(self) -> Sequence[dg.SensorDefinition]:
        return self.whole.get_all_sensors()

    def get_sensor_names(self) -> Sequence[str]:
        return self.whole.get_sensor_names()

    def get_sensor(self, sensor_name: str) -> dg.SensorDefinition:
        return self.whole.get_sensor(sensor_name)

    def has_sensor(self, sensor_name: str) -> bool:
        return self.whole.has_sensor(sensor_name)

    def get_source_assets_by_key(self):
        return self.whole.get_source_assets_by_key()

    def get_assets_defs_by_key(self):
        return self.whole.get_assets_defs_by_key()

    def get_asset_checks_defs_by_key(self):
        return self.whole.get_asset_checks_defs_by_key()

    def get_component_tree(self):
        return self.whole.get_component_tree()

    def get_asset_job_nodes(self):
        return self.whole.get_asset_job_nodes()

    def load_all_definitions(self) -> None:
        self.whole.load_all_definitions()

"""The executor of every job, chosen by ``executor:`` in config/scheduler.yaml.

``in_process`` (all steps in the run's process), ``multiprocess`` (one process per step, at most
``max_concurrent`` at once) or ``celery`` (one Celery task per step, on ``dagster-celery`` workers
sharing the instance and the artifacts folder; broker and backend URLs from the run's executor
config when it gives them — the launchpad shows those fields — else from the environment variables
the config names, read when the run starts; ``max_concurrent`` likewise). Steps hand each other
data only through the artifact IO manager, so every executor writes the same bytes.

Each is wrapped by :class:`CheckedExecutor`, which runs in the run's own process before any step:

- **the venue limits hold**: a run that resolves a live market source (``market_source: ccxt`` in
  its run config) but carries no ``cryptorun/venue.*`` tag — its job was built for an offline
  source, so the queue never counted it against any venue — fails before any step
  (:func:`venue_limit_problem`);
- **the partition check**: a run whose partition tags are not a closed partition of its job
  (:func:`~cryptorun_pipelines.partitions.run_partition_problem`: off-tick, malformed, too early,
  still open, inverted range, no tag; for an asset that reads data after its window, the
  evaluation, a window whose data does not all exist yet: :data:`SETTLE_METADATA`) fails with that
  one sentence and writes nothing, however it was launched (a job, the asset graph — the
  definitions' default executor is this one too —, ``dagster job execute``, schedule, backfill) and
  whatever the executor;
- **Celery has workers**: the broker answers and a worker consumes the run's queues, within
  ``executor.celery.worker_wait_s`` (:mod:`cryptorun_pipelines.celery_workers`); dagster-celery
  alone would wait for a worker forever; and while the steps run, a step whose worker is gone fails
  after ``executor.celery.worker_lost_s`` (:mod:`cryptorun_pipelines.celery_watch`);
- **dry runs stay in one process**: a dry run keeps what it computes in memory only, so under a
  multi-process executor its steps run in the run's process (an engine event says so);
- **the launcher's settings travel with the run**: the config file, artifacts folder and market
  source the run resolved are stamped on it as tags (:data:`SETTINGS_TAGS`); every step process, a
  Celery worker on another host included, reads them from there
  (:meth:`CryptoRunConfigResource.setup_for_execution`) instead of from its own environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster._core.definitions.executor_definition import ExecutorDefinition
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.base import Executor
from dagster._core.executor.in_process import InProcessExecutor

from cryptorun_core.config import CeleryExecutorConfig, ExecutorConfig
from cryptorun_core.timefmt import utcnow
from cryptorun_pipelines.partitions import run_partition_problem
from cryptorun_pipelines.run_tags import LIVE_SOURCES, SETTINGS_TAGS, VENUE_TAG_PREFIX

#: the resource whose resolved config is stamped on the run, and the IO manager that knows dry runs
CONFIG_RESOURCE = "cryptorun_config"
IO_MANAGER = "io_manager"
#: asset metadata: the hours after its window that a partition still reads data (the evaluation's
#: forward returns); the partition may run only once they have passed
SETTLE_METADATA = "data_after_window_hours"
#: the job Dagster runs for materialisations launched from the asset graph (it has no job tags)
ASSET_GRAPH_JOB = "__ASSET_JOB"


class PartitionRefused(dg.DagsterError):
    """The run's partition tags are not a partition its job may fill now (the message says why)."""


class VenueLimitsBypassed(dg.DagsterError):
    """The run calls venues live but carries no venue tag, so the queue's per-venue limits skipped it."""


class CeleryUrlMissing(dg.DagsterError):
    """The environment variable the config names for a Celery URL is not set in the launcher."""


class CeleryWorkersUnavailable(dg.DagsterError):
    """The Celery broker does not answer, or no worker consumes the run's queue in time."""


def _celery_executor() -> ExecutorDefinition:
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:  # pragma: no cover - the production extra is not installed
        raise ImportError(
            "executor.type is celery but dagster-celery is not installed: pip install 'cryptorun[production]'"
        ) from exc
    return celery_executor


def _env_url(environ: Mapping[str, str], key: str, name: str, field: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise CeleryUrlMissing(
            f"executor.celery.{key}: the environment variable {name} is not set (the Celery URL) "
            f"and the run's executor config gives no {field}"
        )
    return value


def celery_config(settings: ExecutorConfig, environ: Mapping[str, str] | None = None,
                  given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The dagster-celery executor config of ``settings``: each URL the run's executor config
    (``given``) sets, else the one in the environment variable the config names."""
    env = os.environ if environ is None else environ
    given = given or {}
    celery = settings.celery
    return {
        field: given.get(field) or _env_url(env, key, name, field)
        for field, key, name in (("broker", "broker_url_env", celery.broker_url_env),
                                 ("backend", "backend_url_env", celery.backend_url_env))
    }


def inner_executor(settings: ExecutorConfig) -> tuple[ExecutorDefinition, Callable[[Mapping[str, Any]], dict[str, Any]]]:
    """The Dagster executor ``settings`` selects, and a function of the run's executor config giving
    the values the CryptoRun config supplies where the run's config leaves them unset (called at run start)."""
    if settings.type == "in_process":
        return dg.in_process_executor, lambda given: {}
    if settings.type == "multiprocess":
        default = settings.multiprocess.max_concurrent
        return dg.multiprocess_executor, lambda given: {
            "max_concurrent": default if given.get("max_concurrent") is None else given["max_concurrent"]}
    return _celery_executor(), lambda given: celery_config(settings, given=given)


def _config_schema(inner: ExecutorDefinition, settings: ExecutorConfig) -> Any:
    """The inner executor's run config fields; for Celery, broker and backend without dagster-celery's
    defaults, so an unset URL is told apart from one the run gives (unset: the environment's)."""
    if settings.type != "celery":
        return inner.config_schema
    fields = dict(inner.config_schema.config_type.fields)
    for field, name in (("broker", settings.celery.broker_url_env), ("backend", settings.celery.backend_url_env)):
        fields[field] = dg.Field(dg.Noneable(dg.StringSource), is_required=False,
                                 description=f"The Celery {field} URL; unset: the one in ${name} where the run starts.")
    return dg.Shape(fields)


def build_executor(settings: ExecutorConfig) -> ExecutorDefinition:
    """The executor definition of every job: the one ``settings`` selects, checked and configured."""
    inner, config = inner_executor(settings)

    def create(init_context) -> Executor:
        executor_config = dict(init_context.executor_config)
        executor_config.update(config(executor_config))
        wrapped = init_context.__class__(
            job=init_context.job, executor_def=inner, executor_config=executor_config, instance=init_context.instance,
        )
        return CheckedExecutor(inner.executor_creation_fn(wrapped), multi_process=settings.type != "in_process",
                               celery=settings.celery if settings.type == "celery" else None)

    return ExecutorDefinition(
        name=f"cryptorun_{settings.type}",
        config_schema=_config_schema(inner, settings),
        requirements=lambda executor_config: inner.get_requirements(executor_config),
        executor_creation_fn=create,
        description=f"{inner.description or inner.name} Chosen by executor.type in the CryptoRun config; the run's "
        "partition is checked before any step.",
    )


def _resolved_config(plan_context, resource: str) -> Mapping[str, Any]:
    """The config ``resource`` gets in this run: the run's config with the definitions' defaults."""
    from dagster._core.system_config.objects import ResolvedRunConfig

    resolved = ResolvedRunConfig.build(plan_context.job.get_definition(), plan_context.run_config).resources.get(resource)
    value = resolved.config if resolved is not None else None
    return value if isinstance(value, Mapping) else {}


def settings_tags(plan_context) -> dict[str, str]:
    """The run's config file, artifacts folder and market source, as the launcher resolved them."""
    values = _resolved_config(plan_context, CONFIG_RESOURCE)
    return {tag: str(values[field]) for field, tag in SETTINGS_TAGS.items() if values.get(field)}


def venue_limit_problem(job: str, run_tags: Mapping[str, str], market_source: str | None) -> str | None:
    """Why a run may not call venues: it resolves a live market source but carries no venue tag (a
    run launched from the asset graph, or a job built for an offline source whose run config switched
    it), so the run queue counted it against no venue's limit. None when the run is fine."""
    if market_source not in LIVE_SOURCES or any(k.startswith(VENUE_TAG_PREFIX) for k in run_tags):
        return None
    if job.startswith(ASSET_GRAPH_JOB):
        return (f"a run launched from the asset graph ({job}) carries no {VENUE_TAG_PREFIX}* tag, so with market_source "
                f"{market_source} the queue's per-venue limits would not hold; launch the job of these assets instead "
                "(its runs carry the venue tags)")
    return (f"{job}: the run's config sets market_source {market_source}, but the job was built for an offline market "
            f"source, so its runs carry no {VENUE_TAG_PREFIX}* tag and the queue's per-venue limits would not hold; "
            "set market.source in the config file the code location loads (or CRYPTORUN_MARKET_SOURCE where it starts)")


def settle_of(job_def) -> timedelta:
    """How long after its window a partition of the job's assets still reads data (:data:`SETTLE_METADATA`)."""
    layer = job_def.asset_layer
    hours = [layer.asset_graph.get(key).metadata.get(SETTLE_METADATA) or 0 for key in layer.selected_asset_keys]
    return timedelta(hours=max(hours, default=0))


def is_dry_run(plan_context) -> bool:
    return bool(_resolved_config(plan_context, IO_MANAGER).get("dry_run"))


class CheckedExecutor(Executor):
    """Checks the run's partition, keeps a dry run in one process and stamps the run's settings,
    then hands the plan to the executor the config chose."""

    def __init__(self, inner: Executor, *, multi_process: bool, celery: CeleryExecutorConfig | None = None):
        self.inner = inner
        self.multi_process = multi_process
        self.celery = celery

    @property
    def retries(self) -> RetryMode:
        return self.inner.retries

    @property
    def step_dependency_config(self):
        return self.inner.step_dependency_config

    def __getattr__(self, name: str) -> Any:  # e.g. app_args(), which the Celery loop asks its executor for
        return getattr(self.inner, name)

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        job_def = plan_context.job.get_definition()
        run = plan_context.dagster_run
        if job_def.partitions_def is not None:
            problem = run_partition_problem(job_def.partitions_def, run.tags, utcnow(), job=job_def.name,
                                            settle=settle_of(job_def))
            if problem:
                raise PartitionRefused(problem)
        tags = settings_tags(plan_context)
        problem = venue_limit_problem(job_def.name, run.tags, tags.get(SETTINGS_TAGS["market_source"]))
        if problem:
            raise VenueLimitsBypassed(problem)
        if tags and any(run.tags.get(k) != v for k, v in tags.items()):
            plan_context.instance.add_run_tags(run.run_id, tags)
        if self.multi_process and is_dry_run(plan_context):
            yield DagsterEvent.engine_event(
                plan_context,
                "dry run: every step runs in this process (a dry run keeps its values in memory only)",
                EngineEventData(),
            )
            yield from InProcessExecutor(retries=self.inner.retries, marker_to_close=None).execute(plan_context, execution_plan)
            return
        if self.celery is not None:
            self._wait_for_celery_workers(plan_context, execution_plan)
            yield from self._execute_celery_watched(plan_context, execution_plan)
            return
        yield from self.inner.execute(plan_context, execution_plan)

    def _execute_celery_watched(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        """dagster-celery's own loop, each step's task watched for a worker that is gone."""
        from dagster_celery.core_execution_loop import core_celery_execution_loop
        from dagster_celery.executor import _submit_task  # what CeleryExecutor.execute hands its loop

        from cryptorun_pipelines.celery_watch import TaskWatch

        watch = TaskWatch(self.celery.worker_lost_s,
                          on_held=lambda step_key, worker: plan_context.log.info(
                              f"step {step_key}: its Celery task is held by the worker {worker}"))
        yield from core_celery_execution_loop(plan_context, execution_plan,
                                              step_execution_fn=watch.step_execution_fn(_submit_task))

    def _wait_for_celery_workers(self, plan_context, execution_plan) -> None:
        from dagster._core.errors import DagsterExecutionInterruptedError
        from dagster._utils.interrupts import pop_captured_interrupt
        from dagster_celery.make_app import make_app

        from cryptorun_pipelines.celery_workers import WaitInterrupted, celery_worker_problem, run_queues

        app = make_app(self.inner.app_args())
        queues = run_queues(execution_plan.get_steps_to_execute_in_topo_order(), app.conf.task_default_queue)
        try:
            # the wait is logged as it begins: the run's page says what the run is waiting for; Terminate
            # (a captured SIGTERM, as the executors' own loops read it) ends it
            problem = celery_worker_problem(app, queues, self.celery.worker_wait_s, plan_context.log.warning,
                                            interrupted=pop_captured_interrupt)
        except WaitInterrupted as exc:
            raise DagsterExecutionInterruptedError(str(exc)) from None
        if problem:
            raise CeleryWorkersUnavailable(problem)

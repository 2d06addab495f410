"""Stored jobs: components registered by name in the run's workspace
(``orbit jobs add NAME component.wasm``), run as child runs (the WIT
``jobs`` interface)::

    # At once, as a child run on this run's remaining fuel and time.
    summary = orbit.jobs.invoke("summarize", "some text")

    # In the background; the queue survives a restart of the host.
    job = orbit.jobs.enqueue("resize", "image-42")
    status = orbit.jobs.status(job)
    if isinstance(status, orbit.jobs.Succeeded):
        print(status.output)
    output = orbit.jobs.wait(job)        # polls until it finishes

Errors raise :class:`orbit.Error`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional, Union

from . import _bindings as _b
from ._errors import Error

__all__ = ["JobId", "Queued", "Running", "Succeeded", "Failed", "JobStatus", "invoke", "enqueue", "status", "wait"]

JobId = str
"""The id of a queued job: a UUID (version 7) in hyphenated form."""


@dataclass(frozen=True)
class Queued:
    """Waiting for a worker."""

    state: ClassVar[Literal["queued"]] = "queued"
    finished: ClassVar[bool] = False


@dataclass(frozen=True)
class Running:
    """Running now."""

    run_id: str
    """The id of the current attempt's run."""
    state: ClassVar[Literal["running"]] = "running"
    finished: ClassVar[bool] = False


@dataclass(frozen=True)
class Succeeded:
    """Finished successfully."""

    run_id: str
    """The id of the run that produced the output (``orbit runs show``)."""
    output: str
    """What the job's component returned."""
    state: ClassVar[Literal["succeeded"]] = "succeeded"
    finished: ClassVar[bool] = True


@dataclass(frozen=True)
class Failed:
    """Finished without success."""

    run_id: Optional[str]
    """The id of its last run; ``None`` when the job could not be started."""
    error: Error
    """Why: the job's own error, ``limit-exceeded`` when it ran out of fuel,
    time or memory, ``internal`` when it trapped."""
    state: ClassVar[Literal["failed"]] = "failed"
    finished: ClassVar[bool] = True


JobStatus = Union[Queued, Running, Succeeded, Failed]
"""Where a queued job is. Each class has ``state`` (``"queued"``,
``"running"``, ``"succeeded"``, ``"failed"``) and ``finished``."""


def invoke(name: str, input: str) -> str:
    """Run the job ``name`` now, as a child of this run, with ``input``, and
    return its output. The child gets at most this run's remaining fuel and
    time (and never more than the job's own defaults); the fuel it uses is
    taken from this run's.

    Raises:
        orbit.Error: ``not-found`` for an unknown job; ``limit-exceeded``
            past the nesting depth limit, with no fuel or time left, or when
            the child ran out of fuel, time or memory; ``too-large`` for an
            input over the cap or an output over the child's limit; the
            child's own error when it returned one; ``internal`` when it
            trapped.
    """
    return str(_b.call("jobs", "invoke", _b.text("name", name), _b.text("input", input)))


def enqueue(name: str, input: str) -> JobId:
    """Queue the job ``name`` with ``input`` for a background run; returns
    its id.

    Raises:
        orbit.Error: ``not-found`` for an unknown job; ``limit-exceeded``
            when the workspace's queue is full or past the nesting depth
            limit; ``too-large`` for an input over the cap.
    """
    return str(_b.call("jobs", "enqueue", _b.text("name", name), _b.text("input", input)))


def status(id: JobId) -> JobStatus:
    """Where the job ``id`` (queued in this workspace) is.

    Raises:
        orbit.Error: ``not-found`` for an unknown id or another workspace's
            job; ``invalid-input`` for a malformed id.
    """
    st: Any = _b.call("jobs", "status", _b.text("id", id))
    wit = _b.interface("jobs")
    if isinstance(st, wit.JobStatus_Running):
        return Running(run_id=st.value)
    if isinstance(st, wit.JobStatus_Succeeded):
        return Succeeded(run_id=st.value.run_id, output=st.value.output)
    if isinstance(st, wit.JobStatus_Failed):
        return Failed(run_id=st.value.run_id, error=_b.error_from_wit(st.value.error))
    return Queued()


def wait(id: JobId, poll_ms: int = 50) -> str:
    """Poll :func:`status` every ``poll_ms`` milliseconds until the job
    finishes, and return its output. The run's own deadline bounds the wait.

    Raises:
        orbit.Error: as :func:`status`, and the job's error when it failed.
    """
    while True:
        st = status(id)
        if isinstance(st, Succeeded):
            return st.output
        if isinstance(st, Failed):
            raise st.error
        time.sleep(max(poll_ms, 1) / 1000)

"""Fuzz every operation of the API with schemathesis, as every kind of caller it accepts.

The schema is the one Keymaster serves at /api/schema/; requests go in-process to the WSGI app
against a real database world (tests/security/fuzz_support.py). Checks: no 5xx; status codes,
content types, headers and bodies as documented; invalid input rejected; an operation that needs
a token refuses requests without one or with a wrong one. A second test follows the schema's
OpenAPI links (register → remove the device, the account's device list → a send to its user →
read or cancel the notification, broadcast → read or cancel it, topics → members, create an app →
use it); at least 60 link scenarios, so some sends reach 202 even at the CI budget. Figures go
to artifacts/reliability/fuzz.json.

`FUZZ_MAX_EXAMPLES` (default small, for CI) and `FUZZ_SEED` set the budget and the seed;
`FUZZ_ONLY` (a regex on "METHOD /path") focuses a local run.
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis.stateful import get_state_machine_test
from schemathesis.core.result import Ok
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test

from tests.security.fuzz_support import (
    Credential,
    FuzzWorld,
    credential_kinds,
    fuzz_max_examples,
    fuzz_seed,
    rightful_kind,
    schema_load,
    world_build,
)

pytestmark = pytest.mark.django_db

FIGURES_PATH = Path(__file__).resolve().parents[2] / "artifacts" / "reliability" / "fuzz.json"


@pytest.fixture(scope="module")
def figures():
    """Both tests' figures, written once the module is done."""
    collected: dict[str, Any] = {"seed": fuzz_seed(), "max_examples": fuzz_max_examples()}
    yield collected
    FIGURES_PATH.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_PATH.write_text(json.dumps(collected, indent=2) + "\n")


@pytest.fixture
def world(settings) -> FuzzWorld:
    # Limits that would stop the fuzzer after ten tries are lifted, so it explores the
    # behaviour past them; their 429s are documented and have their own tests.
    settings.PUSH_REGISTRATIONS_PER_HOUR = 1_000_000
    settings.AUTH_THROTTLE_ATTEMPTS = 1_000_000
    # Fuzzing checks input handling, not password hashing cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return world_build()


@pytest.fixture
def server_errors():
    """Keep the test's connection across requests (as Django's test client does), and keep the
    traceback behind any 500 to show with the failure."""
    seen: list[str] = []

    def record(sender: Any, **kwargs: Any) -> None:
        seen.append(traceback.format_exc(limit=-8))

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    signals.got_request_exception.connect(record)
    yield seen
    signals.got_request_exception.disconnect(record)
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


class _Caller:
    """The schemathesis auth provider: the credential `choose` picks for each operation."""

    choose: Callable[[Any], Credential] | None = None

    def get(self, case: Any, context: Any) -> Credential | None:
        credential = type(self).choose(case.operation) if type(self).choose else None
        return credential if credential and (credential.headers or credential.cookies) else None

    def set(self, case: Any, data: Credential, context: Any) -> None:
        case.headers = {**(case.headers or {}), **data.headers}
        case.cookies = {**(case.cookies or {}), **data.cookies}


def _schema(world: FuzzWorld, *, coverage: bool = True) -> Any:
    schema = schema_load(
        world, seed=fuzz_seed(), max_examples=fuzz_max_examples(), coverage=coverage
    )
    schema.auth(refresh_interval=None, retry_on=[])(_Caller)
    return schema


def _operations(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    only = os.environ.get("FUZZ_ONLY")
    return [op for op in operations if not only or re.search(only, op.label)]


class _Tally:
    """Cases run, by operation and caller, by phase and by positive/negative data."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.phases: Counter[str] = Counter()
        self.modes: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.successes: Counter[str] = Counter()

    def count(self, label: str, case: Any, response: Any) -> None:
        self.cases[label] += 1
        if response.status_code < 300:
            self.successes[case.operation.label] += 1
        if case.meta is not None:
            self.phases[case.meta.phase.name.value] += 1
            self.modes[case.meta.generation.mode.value] += 1
        self.statuses[f"{response.status_code // 100}xx"] += 1

    def runner(self, label: str) -> Callable[[Any], None]:
        def call(case: Any) -> None:
            response = case.call()
            self.count(label, case, response)
            case.validate_response(response)

        return call


def test_fuzz_every_operation_as_each_accepted_caller(world, server_errors, figures, capsys):
    # Every caller gets random positive and negative cases; the caller that can succeed at the
    # operation also gets the deterministic coverage cases (for the others they stop at 401/403/
    # 404 before any input is looked at).
    schema, random_only = _schema(world), _schema(world, coverage=False)
    operations = _operations(schema)
    without_coverage = {op.label: op for op in _operations(random_only)}
    tally, failures = _Tally(), []
    started = time.monotonic()
    try:
        for operation in operations:
            security = operation.definition.raw.get("security")
            for kind in credential_kinds(security):
                label = f"{operation.label} as {kind}"
                _Caller.choose = lambda _operation, kind=kind: world.credentials[kind]
                if kind == rightful_kind(operation.label, security):
                    subject = operation
                else:
                    subject = without_coverage[operation.label]
                test = build_operation_test(
                    config=subject.schema.config,
                    operation=subject,
                    test_func=tally.runner(label),
                    given_kwargs={},
                    feedback=FeedbackSources(),
                )
                with transaction.atomic():  # every run starts from the same world
                    try:
                        test()
                    except (Exception, BaseExceptionGroup) as exc:  # each is reported below
                        failures.append(_failure(label, exc, server_errors))
                    transaction.set_rollback(True)
    finally:
        _Caller.choose = None
    per_operation: Counter[str] = Counter()
    for label, count in tally.cases.items():
        per_operation[label.split(" as ")[0]] += count
    figures["operations"] = {
        "in_schema": len(operations),
        "covered": sum(1 for op in operations if per_operation[op.label]),
        "caller_runs": len(tally.cases),
        "cases": sum(tally.cases.values()),
        "cases_by_phase": dict(tally.phases),
        "cases_by_data": dict(tally.modes),
        "responses": dict(sorted(tally.statuses.items())),
        "operations_answering_2xx": len(tally.successes),
        "cases_per_operation": dict(sorted(per_operation.items())),
        "2xx_per_operation": dict(sorted(tally.successes.items())),
        "cases_per_operation_and_caller": dict(sorted(tally.cases.items())),
        "failures": len(failures),
        "seconds": round(time.monotonic() - started, 1),
    }
    numbers = figures["operations"]
    _summarise(
        capsys,
        f"fuzz: {numbers['covered']}/{numbers['in_schema']} operations, "
        f"{numbers['caller_runs']} operation x caller runs, {numbers['cases']} cases "
        f"({tally.modes['negative']} with invalid data), {numbers['failures']} failures, "
        f"{numbers['seconds']} s",
        figures,
    )
    assert figures["operations"]["covered"] == len(operations) > 0
    assert not failures, "\n\n".join(failures)


def test_fuzz_stateful_links(world, server_errors, figures, capsys):
    schema = _schema(world)
    _Caller.choose = lambda operation: world.credentials[
        rightful_kind(operation.label, operation.definition.raw.get("security"))
    ]
    tally, failures, followed = _Tally(), [], Counter()
    links = sum(
        len(response.get("links", {}))
        for result in schema.get_all_operations()
        if isinstance(result, Ok)
        for response in result.ok().definition.raw.get("responses", {}).values()
    )
    machine = schema.as_state_machine()

    class CountingMachine(machine):  # type: ignore[valid-type, misc]
        # Each scenario starts from the same world, so Hypothesis can replay one exactly.
        def setup(self) -> None:
            super().setup()
            self.savepoint = transaction.savepoint()

        def teardown(self) -> None:
            transaction.savepoint_rollback(self.savepoint)
            super().teardown()

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            tally.count(case.operation.label, case, response)
            parent = self.recorder.find_parent(case_id=case.id)
            if parent is not None:
                followed[f"{parent.operation.label} -> {case.operation.label}"] += 1

    settings = hypothesis.settings(
        max_examples=max(60, fuzz_max_examples()),
        stateful_step_count=6,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    started = time.monotonic()
    try:
        test = get_state_machine_test(CountingMachine, settings=settings, _min_steps=2)
        hypothesis.seed(fuzz_seed())(test)()
    except (Exception, BaseExceptionGroup) as exc:
        failures.append(_failure("stateful", exc, server_errors))
    finally:
        _Caller.choose = None
    figures["stateful"] = {
        "links_in_schema": links,
        "scenarios": settings.max_examples,
        "steps": sum(tally.cases.values()),
        "steps_per_operation": dict(sorted(tally.cases.items())),
        "links_followed": sum(followed.values()),
        "links_followed_by_pair": dict(sorted(followed.items())),
        "sends_accepted": tally.successes["POST /push/send"],
        "responses": dict(sorted(tally.statuses.items())),
        "failures": len(failures),
        "seconds": round(time.monotonic() - started, 1),
    }
    numbers = figures["stateful"]
    _summarise(
        capsys,
        f"fuzz stateful: {numbers['scenarios']} scenarios, {numbers['steps']} steps, "
        f"{numbers['links_followed']} links followed, {numbers['sends_accepted']} sends "
        f"accepted, {numbers['failures']} failures, "
        f"{numbers['seconds']} s",
        figures,
    )
    assert links > 0
    assert not failures, "\n\n".join(failures)
    # The links lead sends to real users: some reach 202.
    assert numbers["sends_accepted"] > 0


def _failure(label: str, exc: BaseException, server_errors: list[str]) -> str:
    behind = f"\nserver traceback:\n{server_errors[-1]}" if server_errors else ""
    return f"{label}:\n{exc}{behind}"


def _summarise(capsys: Any, line: str, figures: dict[str, Any]) -> None:
    with capsys.disabled():
        print(f"\n{line} (seed {figures['seed']}, max examples {figures['max_examples']})")

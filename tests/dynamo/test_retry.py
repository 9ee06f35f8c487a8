"""The one retry loop: the caller's predicate decides, the policy paces, and the error
it caught is never edited (exhaustion raises a new 503 chained to it)."""

from __future__ import annotations

import pytest

from lift_asgi.dynamo.retry import RetryPolicy, run_with_retries
from lift_asgi.errors import (
    ConfigurationError,
    DynamoDBError,
    DynamoDBThrottled,
    DynamoDBUnavailable,
    DynamoDBWriteConflict,
)

FAST = RetryPolicy(attempts=3, base_delay=0.0, max_delay=2.5, deadline=5.0)


class Flaky:
    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.tries = 0

    async def __call__(self) -> str:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def test_retries_what_the_predicate_allows_then_succeeds() -> None:
    flaky = Flaky([DynamoDBThrottled(), DynamoDBUnavailable()])
    assert await run_with_retries(flaky, FAST, lambda e: isinstance(e, DynamoDBUnavailable)) == (
        "done"
    )
    assert flaky.tries == 3


async def test_what_the_predicate_refuses_propagates_untouched() -> None:
    error = DynamoDBUnavailable(aws_code="Timeout")
    flaky = Flaky([error])
    with pytest.raises(DynamoDBUnavailable) as caught:
        await run_with_retries(flaky, FAST, lambda e: isinstance(e, DynamoDBThrottled))
    assert caught.value is error
    assert flaky.tries == 1


async def test_exhaustion_is_a_new_503_and_the_caught_error_is_not_edited() -> None:
    errors: list[Exception] = [DynamoDBWriteConflict(aws_code=f"c{i}") for i in range(3)]
    originals = [(e.headers.copy(), e.extra.copy()) for e in errors]
    last = errors[-1]
    flaky = Flaky(list(errors))
    with pytest.raises(DynamoDBUnavailable) as caught:
        await run_with_retries(flaky, FAST, lambda e: True)
    assert flaky.tries == FAST.attempts
    raised = caught.value
    assert raised is not last and raised.__cause__ is last
    assert type(raised) is DynamoDBWriteConflict and raised.aws_code == "c2"
    assert raised.headers["retry-after"] == "3" and raised.extra["retry_after"] == 3
    assert [(e.headers, e.extra) for e in errors] == originals  # untouched


async def test_a_retryable_error_that_is_not_a_503_becomes_one_when_exhausted() -> None:
    flaky = Flaky([DynamoDBError(aws_code="Weird")] * 3)
    with pytest.raises(DynamoDBUnavailable) as caught:
        await run_with_retries(flaky, FAST, lambda e: isinstance(e, DynamoDBError))
    assert caught.value.status == 503 and caught.value.aws_code == "Weird"


async def test_one_attempt_never_retries() -> None:
    flaky = Flaky([DynamoDBThrottled()])
    with pytest.raises(DynamoDBThrottled):
        await run_with_retries(flaky, RetryPolicy(attempts=1), lambda e: True)
    assert flaky.tries == 1


async def test_the_deadline_stops_retrying() -> None:
    flaky = Flaky([DynamoDBThrottled()] * 10)
    policy = RetryPolicy(attempts=10, base_delay=10.0, max_delay=10.0, deadline=0.0)
    with pytest.raises(DynamoDBThrottled):
        await run_with_retries(flaky, policy, lambda e: True)
    assert flaky.tries == 1


@pytest.mark.parametrize(
    "options", [{"attempts": 0}, {"attempts": True}, {"base_delay": -1}, {"deadline": float("nan")}]
)
def test_bad_policies_are_configuration_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**options)  # type: ignore[arg-type]

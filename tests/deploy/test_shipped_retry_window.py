"""How long the shipped retry policy rides out an S3 (or Twilio) outage before it dead-letters.

The fault suite shortens the backoff cap to stay quick (scenario 3 derives its cap from the
longest S3 may be away); these tests hold the shipped defaults to what the documentation
says of them: a failing archive keeps retrying for at least 23 minutes and at most 47, and is
dead-lettered after that, replayable with `recvault dlq replay --all`.
"""

from __future__ import annotations

import pytest

from recvault.settings import Settings
from tests.faults.scenarios import s3_outage
from tests.faults.scenarios.s3_outage import retry_window

SHIPPED = Settings.model_fields


def test_the_shipped_policy_retries_for_at_least_23_and_at_most_47_minutes() -> None:
    shortest, longest = retry_window(SHIPPED["max_retries"].default, SHIPPED["retry_backoff_max_seconds"].default)
    assert (SHIPPED["max_retries"].default, SHIPPED["retry_backoff_max_seconds"].default) == (12, 600)
    assert (shortest, longest) == (1411.0, 2822.0)
    # Far less than retries × cap (12 × 600 s = 2 h): the first retries come after seconds.
    assert longest < SHIPPED["max_retries"].default * SHIPPED["retry_backoff_max_seconds"].default / 2


@pytest.mark.parametrize("size", [s3_outage.QUICK, s3_outage.FULL], ids=["quick", "full"])
def test_scenario_3_retries_outlast_the_longest_s3_may_be_away_and_waits_a_backoff_after(
        size: s3_outage.Size) -> None:
    cap = s3_outage.backoff_cap(size)
    shortest, _ = retry_window(s3_outage.MAX_RETRIES, cap)
    assert shortest >= s3_outage.longest_away(size)
    assert retry_window(s3_outage.MAX_RETRIES, cap - 1)[0] < s3_outage.longest_away(size)  # the smallest such cap
    assert s3_outage.settle_seconds(size) >= cap + SHIPPED["visibility_timeout_seconds"].default
    # Retries with the shipped count, as recvault ships it.
    assert s3_outage.MAX_RETRIES == SHIPPED["max_retries"].default

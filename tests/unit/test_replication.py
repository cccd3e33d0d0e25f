"""The min.insync.replicas a topic runledger creates gets (events/kafka_log.py): 2 from a
replication factor of 3 up, so one broker may be lost with nothing acknowledged lost and
appends going on; 1 below, where a single copy is all there is (docs/operations.md)."""
from __future__ import annotations

from events.kafka_log import default_min_insync_replicas
from services.settings import Settings


def test_the_default_leaves_room_for_one_broker_away():
    assert [default_min_insync_replicas(rf) for rf in (1, 2, 3, 4, 5)] == [1, 1, 2, 2, 2]


def test_the_setting_overrides_the_default_and_unset_means_the_default():
    assert Settings.from_env({}).min_insync_replicas is None
    assert Settings.from_env({"RUNLEDGER_MIN_INSYNC_REPLICAS": ""}).min_insync_replicas is None
    assert Settings.from_env({"RUNLEDGER_REPLICATION_FACTOR": "5",
                              "RUNLEDGER_MIN_INSYNC_REPLICAS": "3"}).min_insync_replicas == 3

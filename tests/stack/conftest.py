"""Stack tests share the trainer's fixtures (data, queues)."""

from tests.trainer.conftest import fraud_csv, store, tracking_uri, work_queue

__all__ = ["fraud_csv", "store", "tracking_uri", "work_queue"]

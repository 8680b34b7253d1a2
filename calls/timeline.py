"""The call timeline writer: `CallEvent` rows collected, then inserted together.

A timeline row per event was one INSERT round trip per event, the largest single cost of
ingest on PostgreSQL; rows wait here and go in with one bulk_create.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from .models import Call, CallEvent


class Timeline:
    """CallEvent rows waiting to be inserted; `mark()`/`rollback()` undo an event's rows."""

    def __init__(self) -> None:
        self._pending: list[CallEvent] = []
        self.deferring = False

    def record(self, call: Call, kind: str, at: datetime, payload: dict[str, object]) -> None:
        # bulk_create skips CallEvent.save() and its department lookup (a query per event);
        # the tracker already knows the department.
        self._pending.append(CallEvent(call=call, department_id=call.department_id, kind=kind, at=at,
                                       payload=payload))

    def mark(self) -> int:
        return len(self._pending)

    def rollback(self, mark: int) -> None:
        """Forget the rows recorded since `mark` (their event's transaction rolled back)."""
        del self._pending[mark:]

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold every row recorded inside the block; insert them in one statement at its end.

        On an exception nothing is written (the caller's transaction is rolling back anyway).
        """
        self.deferring = True
        try:
            yield
        except BaseException:
            self._pending.clear()
            raise
        finally:
            self.deferring = False
        self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            CallEvent.objects.bulk_create(pending)

    def flush_unless_deferred(self) -> None:
        if not self.deferring:
            self.flush()

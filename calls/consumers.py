"""The live board's WebSocket: a snapshot of the user's live calls, then live updates.

Access is enforced here, not only in the page: an operator joins only their
departments' groups, so another department's calls never reach the socket.
"""

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .ami_service import AmiService
from .board import ALL_GROUP, STATUS_GROUP, department_group, snapshot
from .models import Call, Pbx


class BoardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.close(code=4401)
            return
        self.user = user
        self.groups_joined = await self._groups()
        # Join first, then read the database: an update that lands in between arrives
        # after the snapshot with a newer ts, so nothing is missed and nothing regresses.
        for group in [*self.groups_joined, STATUS_GROUP]:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "snapshot", **await self._snapshot()})

    async def disconnect(self, code: int) -> None:
        for group in [*getattr(self, "groups_joined", []), STATUS_GROUP]:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The board asks for a fresh snapshot after a gap; actions go through HTTP (CSRF, permissions).
        if isinstance(content, dict) and content.get("type") == "resync":
            await self.send_json({"type": "snapshot", **await self._snapshot()})

    async def call_update(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "call", "kind": message["kind"], "call": message["call"]})

    async def ami_status(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "ami", "status": message["status"]})

    @database_sync_to_async
    def _groups(self) -> list[str]:
        if self.user.is_superuser:
            return [ALL_GROUP]
        return [department_group(pk) for pk in self.user.departments.values_list("pk", flat=True)]

    @database_sync_to_async
    def _snapshot(self) -> dict[str, Any]:
        calls = Call.objects.for_user(self.user).live().select_related("department").order_by("started_at")
        statuses = [
            AmiService(name).status() for name in Pbx.objects.filter(enabled=True).values_list("name", flat=True)
        ]
        return {"calls": [snapshot(c) for c in calls[:500]], "ami": statuses}

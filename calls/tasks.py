"""Celery tasks of the calls app: the AMI listener as a long-running, single-instance task."""

import asyncio
import logging

from celery import shared_task
from django.db import connection

from .listener import PbxListener
from .models import Pbx

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=False, ignore_result=True)
def run_ami_listener(self: object, pbx_id: int, max_seconds: float | None = None) -> None:
    """Run the AMI listener of one PBX inside a worker until it stops (or `max_seconds` pass).

    The listener takes the PBX's Redis lock, so a second copy of this task waits as a standby
    and takes over when the first dies. Give such workers a concurrency slot per PBX.
    """
    try:
        pbx = Pbx.objects.filter(pk=pbx_id).first()
    finally:
        # The task may run for days: don't hold a connection it only needed for this lookup.
        connection.close()
    if pbx is None or not pbx.enabled:
        logger.warning("AMI listener task: PBX %s is missing or disabled; not starting", pbx_id)
        return

    async def main() -> None:
        stop = asyncio.Event()
        if max_seconds:
            asyncio.get_running_loop().call_later(max_seconds, stop.set)
        await PbxListener(pbx).run(stop)

    asyncio.run(main())
